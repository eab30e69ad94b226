#pragma once
#include <cstdint>
#include <string>
#include <vector>

// TensorBoard event files read back with protobuf code generated from TensorBoard's own message
// definitions (tests/common/proto), so that the tests check the writer against the real
// format rather than against itself.
namespace sd::testing {

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;  // the first event's
  std::string tag;
  bool has_scalar = false;
  float scalar = 0;
  bool has_image = false;
  int width = 0, height = 0, colorspace = 0;
  std::string png;
};

// False where the tests were built without protobuf and protoc (the tests that need them skip).
bool can_decode_events();

// Every record of the file, its TFRecord framing checked (length, masked CRC-32C of the length
// and of the data); a gtest failure for a damaged record.
std::vector<DecodedEvent> decode_events(const std::string& path);

}  // namespace sd::testing
