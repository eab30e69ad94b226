#include "store/format.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "util/error.h"

namespace sd::store {
namespace {

TEST(Format, HeaderRoundTripAndDamage) {
  RecordInfo info;
  info.key = "sa_123";
  info.dtype = DType::fp16;
  info.shape = {256, 64, 64};
  info.payload_bytes = 256 * 64 * 64 * 2;
  info.payload_crc = 77;
  info.err_sq = 1.5;
  info.ref_sq = 3.25;
  std::string h = encode_header(info);
  ASSERT_EQ(h.size(), payload_offset(info.key.size()));
  RecordInfo back;
  ASSERT_EQ(decode_header(h.data(), h.size(), back), "");
  EXPECT_EQ(back.key, info.key);
  EXPECT_EQ(back.shape, info.shape);
  EXPECT_EQ(back.err_sq, 1.5);
  EXPECT_EQ(back.payload_crc, 77u);
  for (size_t i : {size_t(5), size_t(30), size_t(kHeaderBytes + 2)}) {
    std::string bad = h;
    bad[i] ^= 0x10;
    EXPECT_NE(decode_header(bad.data(), bad.size(), back), "") << "byte " << i;
  }
  // fp16 record: 2 MiB payload plus 128 bytes of header and key.
  EXPECT_EQ(record_bytes(info.key.size(), info.payload_bytes), 2u * 1024 * 1024 + 128);
}

// Found by fuzz/store_record_fuzz.cpp: a header whose CRC is right but whose shape no writer
// makes. An int8 record with 0 channels divided by zero; dimensions whose product is 2^64
// wrapped the payload size to 0, so that decoding read far past the payload; an int8 record of
// 4 dimensions threw from LibTorch instead of an error naming the record.
TEST(Format, HeadersWithImpossibleShapesAreRefused) {
  for (const auto& [dtype, shape] : std::vector<std::pair<DType, std::vector<int64_t>>>{
           {DType::int8, {0, 4, 4}},
           {DType::fp32, {1 << 21, 1 << 21, 1 << 22}},
           {DType::int8, {4, 2, 2, 1}},
           {DType::fp16, {}},
           {DType::bf16, {3, 0, 2}}}) {
    RecordInfo info;
    info.key = "sa_1";
    info.dtype = dtype;
    info.shape = shape;
    info.payload_bytes = 0;
    const std::string h = encode_header(info);
    RecordInfo back;
    EXPECT_EQ(decode_header(h.data(), h.size(), back), "impossible record shape")
        << sd::word(dtype) << " " << at::IntArrayRef(shape);
  }
}

TEST(Format, IndexEntryRoundTripAndDamage) {
  IndexEntry e;
  e.info.key = "sa_9";
  e.info.kind = Kind::image;
  e.info.dtype = DType::uint8;
  e.info.payload_bytes = 12;
  e.offset = 4096;
  e.header_crc = 5;
  std::string bytes = encode_index_entry(e);
  ASSERT_EQ(bytes.size(), kIndexEntryBytes);
  IndexEntry back;
  ASSERT_EQ(decode_index_entry(bytes.data(), back), "");
  EXPECT_EQ(back.info.key, "sa_9");
  EXPECT_EQ(back.offset, 4096u);
  EXPECT_EQ(back.info.kind, Kind::image);
  bytes[10] ^= 1;
  EXPECT_EQ(decode_index_entry(bytes.data(), back), "checksum mismatch");
}

TEST(Format, EmbeddingEncodingPerDtype) {
  at::manual_seed(3);
  at::Tensor x = at::randn({1, 16, 8, 8}) * 3;
  at::Tensor x3 = x[0];
  for (DType d : {DType::fp32, DType::fp16, DType::bf16, DType::int8}) {
    Encoded e = encode_embedding("k", x, d);
    EXPECT_EQ(e.info.shape, (std::vector<int64_t>{16, 8, 8}));
    at::Tensor y = decode_payload(e.info, e.payload).to(at::kFloat);
    at::Tensor expected;
    if (d == DType::fp32) expected = x3;
    if (d == DType::fp16) expected = x3.to(at::kHalf).to(at::kFloat);
    if (d == DType::bf16) expected = x3.to(at::kBFloat16).to(at::kFloat);
    if (d == DType::int8) {
      at::Tensor scale = x3.abs().amax({1, 2}, true) / 127;
      EXPECT_TRUE(((y - x3).abs() <= scale / 2 + 1e-6).all().item<bool>());
      expected = y;
    }
    EXPECT_TRUE(at::equal(y, expected)) << sd::word(d);
    EXPECT_TRUE(at::equal(decode_embedding(e.info, e.payload), y)) << sd::word(d);
    double err = (y - x3).square().sum().item<double>();
    EXPECT_NEAR(e.info.err_sq, err, 1e-6 * std::max(1.0, err)) << sd::word(d);
    EXPECT_NEAR(e.info.ref_sq, x3.square().sum().item<double>(), 1e-3);
  }
  EXPECT_EQ(encode_embedding("k", x, DType::fp32).info.err_sq, 0.0);
  EXPECT_GT(encode_embedding("k", x, DType::int8).info.err_sq, 0.0);
}

TEST(Format, CompactEncodingFitsOneMebibyte) {
  at::Tensor x = at::randn({256, 64, 64});
  Encoded e = encode_embedding("sa_1234567", x, DType::int8);
  // 1 MiB of int8 values plus 1 KiB of per-channel scales, header and key.
  EXPECT_LE(record_bytes(e.info.key.size(), e.info.payload_bytes), 1024u * 1024 * 101 / 100);
  Encoded half = encode_embedding("sa_1234567", x, DType::fp16);
  EXPECT_LE(record_bytes(half.info.key.size(), half.info.payload_bytes),
            2u * 1024 * 1024 * 101 / 100);
}

TEST(Format, RefusesBadValues) {
  at::Tensor x = at::zeros({2, 2, 2});
  x[0][0][0] = NAN;
  EXPECT_THROW(encode_embedding("k", x, DType::fp16), Error);
  EXPECT_THROW(encode_embedding("k", at::full({2, 2, 2}, 1e6), DType::fp16), Error);
  EXPECT_THROW(encode_embedding("k", at::zeros({2, 2}), DType::fp16), Error);
  EXPECT_THROW(
      encode_embedding(std::string(kMaxKeyBytes + 1, 'a'), at::zeros({1, 1, 1}), DType::fp16),
      Error);
  EXPECT_THROW(encode_image("k", at::zeros({4, 4, 3})), Error);  // float, not uint8
  EXPECT_THROW(parse_embedding_dtype("fp8"), Error);
}

TEST(Format, ImageRoundTrip) {
  at::Tensor img = at::randint(0, 256, {5, 7, 3}, at::kByte);
  Encoded e = encode_image("sa_1", img);
  EXPECT_EQ(e.info.payload_bytes, 5u * 7 * 3);
  EXPECT_TRUE(at::equal(decode_payload(e.info, e.payload), img));
}

}  // namespace
}  // namespace sd::store
