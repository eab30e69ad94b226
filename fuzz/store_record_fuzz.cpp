// The embedding store's on-disk records: a record header with its key, an index entry, and
// the payload a valid header describes. The header's CRC-32C is set right before decoding,
// so that the fuzzer explores the fields behind it (a store is as hostile as its writer).
#include <ATen/ATen.h>

#include <cstring>

#include "store/format.h"
#include "util/crc32c.h"
#include "util/error.h"

namespace {

void set_header_crc(std::string& b) {
  const size_t key_bytes = static_cast<uint8_t>(b[7]);
  if (key_bytes == 0 || key_bytes > sd::store::kMaxKeyBytes) return;
  const size_t end = sd::store::payload_offset(key_bytes);
  if (b.size() < end) return;
  uint32_t crc = sd::crc32c(b.data(), 60);
  crc = sd::crc32c(b.data() + sd::store::kHeaderBytes, end - sd::store::kHeaderBytes, crc);
  std::memcpy(&b[60], &crc, 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= sd::store::kIndexEntryBytes) {
    sd::store::IndexEntry entry;
    sd::store::decode_index_entry(bytes.data(), entry);
  }
  if (size < sd::store::kHeaderBytes) return 0;
  set_header_crc(bytes);
  sd::store::RecordInfo info;
  if (!sd::store::decode_header(bytes.data(), size, info).empty()) return 0;
  const uint64_t at = sd::store::payload_offset(info.key.size());
  if (at > size || info.payload_bytes != size - at) return 0;
  at::Tensor payload = at::empty({int64_t(info.payload_bytes)}, at::kByte);
  if (info.payload_bytes) std::memcpy(payload.data_ptr(), bytes.data() + at, info.payload_bytes);
  try {
    sd::store::decode_payload(info, payload);
    if (info.kind == sd::store::Kind::embedding) sd::store::decode_embedding(info, payload);
  } catch (const sd::Error&) {
  }
  return 0;
}
