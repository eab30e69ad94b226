#include "common/events.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "util/crc32c.h"

#ifdef SAMDISTILL_WITH_PROTOBUF
#include "event.pb.h"
#endif

namespace sd::testing {
namespace {

uint32_t masked_crc32c(const char* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

template <typename T>
T read_le(const std::string& bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}

// The data of each TFRecord of the file.
std::vector<std::string> tfrecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string file = buffer.str();
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_LE(at + 12, file.size()) << path << ": torn record header at " << at;
    if (at + 12 > file.size()) break;
    const uint64_t n = read_le<uint64_t>(file, at);
    EXPECT_EQ(read_le<uint32_t>(file, at + 8), masked_crc32c(file.data() + at, 8))
        << path << ": length CRC at " << at;
    EXPECT_LE(at + 16 + n, file.size()) << path << ": torn record at " << at;
    if (at + 16 + n > file.size()) break;
    EXPECT_EQ(read_le<uint32_t>(file, at + 12 + n), masked_crc32c(file.data() + at + 12, n))
        << path << ": data CRC at " << at;
    out.push_back(file.substr(at + 12, n));
    at += 16 + n;
  }
  return out;
}

}  // namespace

#ifdef SAMDISTILL_WITH_PROTOBUF

bool can_decode_events() { return true; }

std::vector<DecodedEvent> decode_events(const std::string& path) {
  std::vector<DecodedEvent> out;
  for (const std::string& data : tfrecords(path)) {
    tensorboard::Event e;
    EXPECT_TRUE(e.ParseFromString(data)) << path << ": not an Event";
    DecodedEvent d;
    d.wall_time = e.wall_time();
    d.step = e.step();
    d.file_version = e.file_version();
    if (e.has_summary()) {
      EXPECT_EQ(e.summary().value_size(), 1) << path;
      const tensorboard::Summary::Value& v = e.summary().value(0);
      d.tag = v.tag();
      d.has_scalar = v.has_simple_value();
      d.scalar = v.simple_value();
      d.has_image = v.has_image();
      d.width = v.image().width();
      d.height = v.image().height();
      d.colorspace = v.image().colorspace();
      d.png = v.image().encoded_image_string();
    }
    out.push_back(std::move(d));
  }
  return out;
}

#else

bool can_decode_events() { return false; }
std::vector<DecodedEvent> decode_events(const std::string& path) {
  tfrecords(path);
  return {};
}

#endif

}  // namespace sd::testing
