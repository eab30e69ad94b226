#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/words.h"

// The on-disk records of an embedding store; see store/README.md for the layout.
namespace sd::store {

enum class Kind : uint8_t { embedding = 0, image = 1 };
// How values are stored: fp32/fp16/bf16 as such, int8 as per-channel float32 scales followed by
// int8 values (value = q * scale[c]), uint8 for cached images.
enum class DType : uint8_t { fp32 = 0, fp16 = 1, bf16 = 2, int8 = 3, uint8 = 4 };

std::string kind_name(Kind kind);
// An embedding's dtype (DType's word, not uint8); sd::Error listing them otherwise.
DType parse_embedding_dtype(const std::string& name);

constexpr size_t kHeaderBytes = 64;
constexpr size_t kIndexEntryBytes = 128;
constexpr size_t kMaxKeyBytes = 76;
constexpr size_t kMaxDims = 4;

// Fields shared by a record's header and its index entry.
struct RecordInfo {
  Kind kind = Kind::embedding;
  DType dtype = DType::fp16;
  std::string key;
  std::vector<int64_t> shape;  // of the decoded tensor (CxHxW, or HxWx3 for images)
  uint64_t payload_bytes = 0;
  uint32_t payload_crc = 0;
  // Squared error of the stored values against the float32 input, and the input's squared
  // norm: summed over records they give the store's relative MSE.
  double err_sq = 0;
  double ref_sq = 0;
};

// Bytes from a record's start to its payload, and the record's total size (64-aligned).
uint64_t payload_offset(size_t key_bytes);
uint64_t record_bytes(size_t key_bytes, uint64_t payload_bytes);

// Header (64 bytes) + key (zero-padded to 64) of a record; the header's own CRC covers both.
std::string encode_header(const RecordInfo& info);
// Inverse of encode_header; empty string when valid, else what is wrong.
std::string decode_header(const char* bytes, size_t size, RecordInfo& info);
uint32_t header_crc(const char* bytes);  // the CRC stored in a header's last 4 bytes

// One 128-byte index entry: where a committed record lives and what it holds.
struct IndexEntry {
  RecordInfo info;  // shape is not in the index (it lives in the header)
  uint64_t offset = 0;
  uint32_t header_crc = 0;
};
std::string encode_index_entry(const IndexEntry& entry);
std::string decode_index_entry(const char* bytes, IndexEntry& entry);

// An embedding or image converted to its stored bytes, with its error statistics.
struct Encoded {
  RecordInfo info;
  at::Tensor payload;  // uint8, contiguous, CPU
};
// `values`: CxHxW (or 1xCxHxW) of any floating dtype on any device; non-finite values and
// values out of the dtype's range are errors naming `key`.
Encoded encode_embedding(const std::string& key, const at::Tensor& values, DType dtype);
// `image`: uint8 HxWx3.
Encoded encode_image(const std::string& key, const at::Tensor& image);
// The stored tensor as written (`shape`, dtype per `info.dtype`); int8 gives its float32 decode.
at::Tensor decode_payload(const RecordInfo& info, const at::Tensor& payload);
// An embedding record as float32 CxHxW. Plain loops on the calling thread: readers decode in
// parallel across records, and LibTorch's OpenMP conversion stalls on a busy machine.
at::Tensor decode_embedding(const RecordInfo& info, const at::Tensor& payload);

}  // namespace sd::store

namespace sd {
template <>
struct WordsOf<store::DType> {
  static constexpr std::pair<store::DType, const char*> list[] = {{store::DType::fp16, "fp16"},
                                                                  {store::DType::bf16, "bf16"},
                                                                  {store::DType::fp32, "fp32"},
                                                                  {store::DType::int8, "int8"},
                                                                  {store::DType::uint8, "uint8"}};
};
}  // namespace sd
