#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

// Protobuf's wire encoding of single fields, for the few messages the project writes by hand
// (TensorBoard's events, ONNX models): the core needs no protobuf library.
namespace sd::protobuf {

enum WireType { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

inline void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += char((v & 0x7f) | 0x80);
  out += char(v);
}
inline void put_key(std::string& out, int field, WireType type) {
  put_varint(out, uint64_t(field) << 3 | type);
}
inline void put_int(std::string& out, int field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, uint64_t(v));
}
inline void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_key(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}
template <typename T>
void put_fixed(std::string& out, int field, T v) {
  put_key(out, field, sizeof(T) == 8 ? kFixed64 : kFixed32);
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));  // little-endian, as protobuf's fixed fields
  out.append(raw, sizeof(T));
}

}  // namespace sd::protobuf
