#include "store/format.h"

#include <ATen/ATen.h>

#include <cstring>
#include <optional>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "util/crc32c.h"
#include "util/error.h"

namespace sd::store {
namespace {

constexpr char kRecordMagic[4] = {'S', 'D', 'R', '1'};
constexpr char kIndexMagic[4] = {'S', 'D', 'X', '1'};

template <typename T>
void put(std::string& buf, size_t offset, T value) {
  std::memcpy(&buf[offset], &value, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
}
template <typename T>
T get(const char* buf, size_t offset) {
  T value;
  std::memcpy(&value, buf + offset, sizeof(T));
  return value;
}

uint64_t align64(uint64_t n) { return (n + 63) / 64 * 64; }

size_t element_bytes(DType dtype) {
  switch (dtype) {
    case DType::fp32:
      return 4;
    case DType::fp16:
    case DType::bf16:
      return 2;
    case DType::int8:
    case DType::uint8:
      return 1;
  }
  return 0;
}

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::fp32:
      return at::kFloat;
    case DType::fp16:
      return at::kHalf;
    case DType::bf16:
      return at::kBFloat16;
    case DType::int8:
      return at::kChar;
    case DType::uint8:
      return at::kByte;
  }
  return at::kByte;
}

// int8 records start with one float32 scale per channel (dimension 0).
// What encode_embedding and encode_image write: 3 dimensions (CxHxW, HxWx3), none empty, and
// few enough values that the payload's size cannot overflow (a header is as untrusted as its
// file).
bool possible_shape(const std::vector<int64_t>& shape) {
  constexpr uint64_t kMaxValues = uint64_t(1) << 40;
  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d < 1 || static_cast<uint64_t>(d) > kMaxValues / count) return false;
    count *= static_cast<uint64_t>(d);
  }
  return shape.size() == 3;
}

uint64_t expected_payload_bytes(DType dtype, const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  uint64_t scales = dtype == DType::int8 && !shape.empty() ? 4 * uint64_t(shape[0]) : 0;
  return scales + count * element_bytes(dtype);
}

bool valid_kind_dtype(uint8_t kind, uint8_t dtype) {
  if (kind == uint8_t(Kind::embedding)) return dtype <= uint8_t(DType::int8);
  return kind == uint8_t(Kind::image) && dtype == uint8_t(DType::uint8);
}

void check_key(const std::string& key) {
  if (key.empty() || key.size() > kMaxKeyBytes)
    throw Error("store key '" + key + "' must have 1 to " + std::to_string(kMaxKeyBytes) +
                " bytes");
}

at::Tensor to_bytes(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  at::Tensor out = at::empty({int64_t(c.numel() * c.element_size())}, at::kByte);
  std::memcpy(out.data_ptr(), c.data_ptr(), out.numel());
  return out;
}

void half_to_float(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = static_cast<float>(reinterpret_cast<const c10::Half*>(src)[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) void half_to_float_f16c(const uint8_t* src, float* dst,
                                                            int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  half_to_float(src + 2 * i, dst + i, n - i);
}
#endif

#if defined(__x86_64__)
// From CPUID: clang has no __builtin_cpu_supports("f16c").
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __builtin_cpu_supports("avx") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
         (ecx & bit_F16C);
}
#endif

// fp16 -> float32 with the F16C instruction where the CPU has it, else a scalar loop.
void decode_half(const uint8_t* src, float* dst, int64_t n) {
#if defined(__x86_64__)
  static const bool f16c = cpu_has_f16c();
  if (f16c) return half_to_float_f16c(src, dst, n);
#endif
  half_to_float(src, dst, n);
}

double squared_sum(const at::Tensor& t) { return at::sum(t.square(), at::kDouble).item<double>(); }

}  // namespace

std::string kind_name(Kind kind) { return kind == Kind::embedding ? "embedding" : "image"; }

DType parse_embedding_dtype(const std::string& name) {
  const std::optional<DType> d = from_word<DType>(name);
  if (d && *d != DType::uint8) return *d;
  throw Error("unknown store dtype '" + name + "' (expected fp16, bf16, fp32 or int8)");
}

uint64_t payload_offset(size_t key_bytes) { return kHeaderBytes + align64(key_bytes); }

uint64_t record_bytes(size_t key_bytes, uint64_t payload_bytes) {
  return align64(payload_offset(key_bytes) + payload_bytes);
}

uint32_t header_crc(const char* bytes) { return get<uint32_t>(bytes, 60); }

// Layout: magic, kind, dtype, ndim, key length, shape[4] (u32), payload bytes (u64), err_sq,
// ref_sq (f64), payload CRC, 8 reserved bytes, header CRC (of everything before it + key area).
std::string encode_header(const RecordInfo& info) {
  check_key(info.key);
  std::string buf(payload_offset(info.key.size()), '\0');
  std::memcpy(&buf[0], kRecordMagic, 4);
  put<uint8_t>(buf, 4, uint8_t(info.kind));
  put<uint8_t>(buf, 5, uint8_t(info.dtype));
  put<uint8_t>(buf, 6, uint8_t(info.shape.size()));
  put<uint8_t>(buf, 7, uint8_t(info.key.size()));
  for (size_t i = 0; i < info.shape.size(); ++i)
    put<uint32_t>(buf, 8 + 4 * i, uint32_t(info.shape[i]));
  put<uint64_t>(buf, 24, info.payload_bytes);
  put<double>(buf, 32, info.err_sq);
  put<double>(buf, 40, info.ref_sq);
  put<uint32_t>(buf, 48, info.payload_crc);
  std::memcpy(&buf[kHeaderBytes], info.key.data(), info.key.size());
  uint32_t crc = crc32c(buf.data(), 60);
  put<uint32_t>(buf, 60, crc32c(buf.data() + kHeaderBytes, buf.size() - kHeaderBytes, crc));
  return buf;
}

std::string decode_header(const char* b, size_t size, RecordInfo& info) {
  if (size < kHeaderBytes || std::memcmp(b, kRecordMagic, 4) != 0)
    return "no record header (bad magic)";
  uint8_t kind = get<uint8_t>(b, 4), dtype = get<uint8_t>(b, 5), ndim = get<uint8_t>(b, 6);
  size_t key_len = get<uint8_t>(b, 7);
  if (key_len == 0 || key_len > kMaxKeyBytes || ndim > kMaxDims) return "corrupt record header";
  if (size < payload_offset(key_len)) return "record header cut short";
  uint32_t crc = crc32c(b, 60);
  crc = crc32c(b + kHeaderBytes, payload_offset(key_len) - kHeaderBytes, crc);
  if (crc != header_crc(b)) return "record header checksum mismatch";
  if (!valid_kind_dtype(kind, dtype)) return "unknown record kind or dtype";
  info.kind = Kind(kind);
  info.dtype = DType(dtype);
  info.key.assign(b + kHeaderBytes, key_len);
  info.shape.clear();
  for (size_t i = 0; i < ndim; ++i) info.shape.push_back(get<uint32_t>(b, 8 + 4 * i));
  info.payload_bytes = get<uint64_t>(b, 24);
  info.err_sq = get<double>(b, 32);
  info.ref_sq = get<double>(b, 40);
  info.payload_crc = get<uint32_t>(b, 48);
  if (!possible_shape(info.shape)) return "impossible record shape";
  if (info.payload_bytes != expected_payload_bytes(info.dtype, info.shape))
    return "payload size does not match shape and dtype";
  return "";
}

// Layout: magic, kind, dtype, key length, reserved, offset, payload bytes (u64), err_sq, ref_sq
// (f64), payload CRC, header CRC, key (76 bytes, zero-padded), entry CRC (of the first 124 bytes).
std::string encode_index_entry(const IndexEntry& e) {
  check_key(e.info.key);
  std::string buf(kIndexEntryBytes, '\0');
  std::memcpy(&buf[0], kIndexMagic, 4);
  put<uint8_t>(buf, 4, uint8_t(e.info.kind));
  put<uint8_t>(buf, 5, uint8_t(e.info.dtype));
  put<uint8_t>(buf, 6, uint8_t(e.info.key.size()));
  put<uint64_t>(buf, 8, e.offset);
  put<uint64_t>(buf, 16, e.info.payload_bytes);
  put<double>(buf, 24, e.info.err_sq);
  put<double>(buf, 32, e.info.ref_sq);
  put<uint32_t>(buf, 40, e.info.payload_crc);
  put<uint32_t>(buf, 44, e.header_crc);
  std::memcpy(&buf[48], e.info.key.data(), e.info.key.size());
  put<uint32_t>(buf, 124, crc32c(buf.data(), 124));
  return buf;
}

std::string decode_index_entry(const char* b, IndexEntry& e) {
  if (std::memcmp(b, kIndexMagic, 4) != 0) return "bad magic";
  if (crc32c(b, 124) != get<uint32_t>(b, 124)) return "checksum mismatch";
  uint8_t kind = get<uint8_t>(b, 4), dtype = get<uint8_t>(b, 5);
  size_t key_len = get<uint8_t>(b, 6);
  if (!valid_kind_dtype(kind, dtype) || key_len == 0 || key_len > kMaxKeyBytes)
    return "corrupt fields";
  e.info.kind = Kind(kind);
  e.info.dtype = DType(dtype);
  e.info.key.assign(b + 48, key_len);
  e.offset = get<uint64_t>(b, 8);
  e.info.payload_bytes = get<uint64_t>(b, 16);
  e.info.err_sq = get<double>(b, 24);
  e.info.ref_sq = get<double>(b, 32);
  e.info.payload_crc = get<uint32_t>(b, 40);
  e.header_crc = get<uint32_t>(b, 44);
  // The most a possible shape holds (2^40 values, 4 bytes each, plus int8 scales); the offset
  // and size must also add up without overflow.
  constexpr uint64_t kMaxPayload = uint64_t(8) << 40, kMaxOffset = uint64_t(1) << 62;
  if (e.info.payload_bytes > kMaxPayload || e.offset > kMaxOffset)
    return "impossible offset " + std::to_string(e.offset) + " or payload size " +
           std::to_string(e.info.payload_bytes);
  return "";
}

Encoded encode_embedding(const std::string& key, const at::Tensor& values, DType dtype) {
  check_key(key);
  at::Tensor x = values.detach().to(at::kCPU, at::kFloat).contiguous();
  if (x.dim() == 4 && x.size(0) == 1) x = x.squeeze(0);
  if (x.dim() != 3)
    throw Error("embedding '" + key + "' must be CxHxW, got " + std::to_string(x.dim()) + " dims");
  if (!at::isfinite(x).all().item<bool>())
    throw Error("embedding '" + key + "' has non-finite values");
  Encoded out;
  at::Tensor decoded;
  switch (dtype) {
    case DType::fp32:
      out.payload = to_bytes(x);
      decoded = x;
      break;
    case DType::fp16:
    case DType::bf16: {
      at::Tensor stored = x.to(scalar_type(dtype));
      decoded = stored.to(at::kFloat);
      if (!at::isfinite(decoded).all().item<bool>())
        throw Error("embedding '" + key + "' has values outside the range of " + word(dtype));
      out.payload = to_bytes(stored);
      break;
    }
    case DType::int8: {
      // Symmetric per-channel quantisation: scale = max |x| / 127 over the channel.
      at::Tensor scales = x.abs().amax({1, 2}).div_(127.0);
      scales.masked_fill_(scales == 0, 1.0);
      at::Tensor per_channel = scales.view({-1, 1, 1});
      at::Tensor q = x.div(per_channel).round_().clamp_(-127, 127).to(at::kChar);
      decoded = q.to(at::kFloat).mul_(per_channel);
      out.payload = at::cat({to_bytes(scales), to_bytes(q)});
      break;
    }
    case DType::uint8:
      throw Error("embedding '" + key + "': uint8 is for cached images, not embeddings");
  }
  out.info.kind = Kind::embedding;
  out.info.dtype = dtype;
  out.info.key = key;
  out.info.shape = x.sizes().vec();
  out.info.payload_bytes = out.payload.numel();
  out.info.payload_crc = crc32c(out.payload.data_ptr(), out.payload.numel());
  out.info.err_sq = squared_sum(decoded - x);
  out.info.ref_sq = squared_sum(x);
  return out;
}

Encoded encode_image(const std::string& key, const at::Tensor& image) {
  check_key(key);
  if (image.scalar_type() != at::kByte || image.dim() != 3 || image.size(2) != 3)
    throw Error("cached image '" + key + "' must be uint8 HxWx3");
  Encoded out;
  out.payload = to_bytes(image.cpu());
  out.info.kind = Kind::image;
  out.info.dtype = DType::uint8;
  out.info.key = key;
  out.info.shape = image.sizes().vec();
  out.info.payload_bytes = out.payload.numel();
  out.info.payload_crc = crc32c(out.payload.data_ptr(), out.payload.numel());
  return out;
}

at::Tensor decode_payload(const RecordInfo& info, const at::Tensor& payload) {
  if (info.dtype != DType::int8) return payload.view(scalar_type(info.dtype)).view(info.shape);
  int64_t channels = info.shape.at(0);
  at::Tensor scales = payload.narrow(0, 0, 4 * channels).view(at::kFloat).view({-1, 1, 1});
  at::Tensor q = payload.narrow(0, 4 * channels, payload.numel() - 4 * channels).view(at::kChar);
  return q.view(info.shape).to(at::kFloat).mul_(scales);
}

at::Tensor decode_embedding(const RecordInfo& info, const at::Tensor& payload) {
  if (info.kind != Kind::embedding)
    throw Error("record '" + info.key + "' is a " + kind_name(info.kind) + ", not an embedding");
  at::Tensor out = at::empty(info.shape, at::kFloat);
  float* dst = out.data_ptr<float>();
  const int64_t n = out.numel();
  const uint8_t* src = payload.data_ptr<uint8_t>();
  switch (info.dtype) {
    case DType::fp32:
      std::memcpy(dst, src, n * sizeof(float));
      break;
    case DType::fp16:
      decode_half(src, dst, n);
      break;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i)
        dst[i] = static_cast<float>(reinterpret_cast<const c10::BFloat16*>(src)[i]);
      break;
    case DType::int8: {
      const int64_t channels = info.shape.at(0), per_channel = n / channels;
      const float* scales = reinterpret_cast<const float*>(src);
      const int8_t* q = reinterpret_cast<const int8_t*>(src + 4 * channels);
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = c * per_channel; i < (c + 1) * per_channel; ++i) dst[i] = q[i] * scales[c];
      break;
    }
    case DType::uint8:
      break;
  }
  return out;
}

}  // namespace sd::store
