#include "io/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include "util/atomic_file.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/protobuf.h"
#include "util/text.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

// Field numbers of event.proto and summary.proto.
enum EventField { kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5 };
enum ValueField { kTag = 1, kSimpleValue = 2, kImage = 4 };
enum ImageField { kHeight = 1, kWidth = 2, kColorspace = 3, kEncoded = 4 };
constexpr int kRgb = 3;  // Summary.Image.colorspace
using namespace protobuf;

// A Summary holding one Value: tag plus `value` (the oneof field, already encoded).
std::string summary(const std::string& tag, const std::string& value) {
  std::string v;
  put_bytes(v, kTag, tag);
  v += value;
  std::string s;
  put_bytes(s, 1, v);  // Summary.value
  return s;
}

// TFRecord's masked CRC-32C.
uint32_t masked_crc(const std::string& bytes) {
  const uint32_t crc = crc32c(bytes.data(), bytes.size());
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

template <typename T>
std::string little_endian(T v) {
  std::string raw(sizeof(T), '\0');
  std::memcpy(raw.data(), &v, sizeof(T));
  return raw;
}

std::string record(const std::string& data) {
  const std::string length = little_endian<uint64_t>(data.size());
  return length + little_endian(masked_crc(length)) + data + little_endian(masked_crc(data));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
  return name;
}

// A name no earlier file of `dir` has: a second run within the same second gets a suffix.
std::string new_file_name(const std::string& dir) {
  const std::string base =
      dir + "/events.out.tfevents." + std::to_string(int64_t(now_seconds())) + "." + host_name();
  std::string path = base;
  for (int n = 1; fs::exists(path); ++n) path = base + "." + std::to_string(n);
  return path;
}

// Reads protobuf fields of one message.
class FieldReader {
 public:
  explicit FieldReader(std::string_view bytes) : rest_(bytes) {}

  // The next field's number and wire type; false at the end.
  bool next(int& field, int& type) {
    if (rest_.empty()) return false;
    const uint64_t key = varint();
    field = int(key >> 3);
    type = int(key & 7);
    return true;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = uint8_t(take(1)[0]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw Error("malformed varint");
  }
  std::string_view bytes() { return take(varint()); }
  std::string_view fixed(size_t n) { return take(n); }
  void skip(int type) {
    if (type == kVarint)
      varint();
    else if (type == kFixed64)
      take(8);
    else if (type == kBytes)
      bytes();
    else if (type == kFixed32)
      take(4);
    else
      throw Error("unknown wire type " + std::to_string(type));
  }

 private:
  std::string_view take(size_t n) {
    if (n > rest_.size()) throw Error("truncated message");
    std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return out;
  }
  std::string_view rest_;
};

// The scalar an event holds; nullopt for any other event.
std::optional<ScalarEvent> scalar_of(std::string_view event) {
  ScalarEvent s;
  bool has_value = false;
  FieldReader e(event);
  for (int field, type; e.next(field, type);) {
    if (field == kStep && type == kVarint) {
      s.step = int64_t(e.varint());
    } else if (field == kSummary && type == kBytes) {
      FieldReader summary(e.bytes());
      for (int f, t; summary.next(f, t);) {
        if (f != 1 || t != kBytes) {
          summary.skip(t);
          continue;
        }
        FieldReader value(summary.bytes());
        for (int vf, vt; value.next(vf, vt);) {
          if (vf == kTag && vt == kBytes) {
            s.tag = std::string(value.bytes());
          } else if (vf == kSimpleValue && vt == kFixed32) {
            float v;
            std::memcpy(&v, value.fixed(4).data(), 4);
            s.value = v;
            has_value = true;
          } else {
            value.skip(vt);
          }
        }
      }
    } else {
      e.skip(type);
    }
  }
  if (!has_value) return std::nullopt;
  return s;
}

// The records of a TFRecord file, up to the first torn or damaged one.
std::vector<std::string> read_records(const std::string& path) {
  const std::string file = read_file(path);
  std::vector<std::string> out;
  for (size_t at = 0; at + 12 <= file.size();) {
    const std::string length = file.substr(at, 8);
    uint64_t n;
    std::memcpy(&n, length.data(), 8);
    uint32_t crc;
    std::memcpy(&crc, file.data() + at + 8, 4);
    const size_t left = file.size() - at - 12;  // data and its CRC
    if (crc != masked_crc(length) || n > left || left - n < 4) break;
    std::string data = file.substr(at + 12, n);
    std::memcpy(&crc, file.data() + at + 12 + n, 4);
    if (crc != masked_crc(data)) break;
    out.push_back(std::move(data));
    at += 16 + n;
  }
  return out;
}

}  // namespace

bool is_event_file(const std::string& name) { return starts_with(name, "events.out.tfevents."); }

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_event_file(entry.path().filename().string()))
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

EventWriter::EventWriter(const std::string& dir) {
  fs::create_directories(dir);
  path_ = new_file_name(dir);
  out_.open(path_, std::ios::binary);
  if (!out_) throw Error("cannot write TensorBoard event file '" + path_ + "'");
  std::string version;
  put_bytes(version, kFileVersion, "brain.Event:2");
  write_event(0, version);
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  std::string v;
  put_fixed(v, kSimpleValue, float(value));
  std::string what;
  put_bytes(what, kSummary, summary(tag, v));
  write_event(step, what);
}

void EventWriter::image(const std::string& tag, int64_t step, const std::string& png, int64_t width,
                        int64_t height) {
  std::string image;
  put_int(image, kHeight, height);
  put_int(image, kWidth, width);
  put_int(image, kColorspace, kRgb);
  put_bytes(image, kEncoded, png);
  std::string v;
  put_bytes(v, kImage, image);
  std::string what;
  put_bytes(what, kSummary, summary(tag, v));
  write_event(step, what);
}

void EventWriter::write_event(int64_t step, const std::string& what) {
  std::string event;
  put_fixed(event, kWallTime, now_seconds());
  put_int(event, kStep, step);
  event += what;
  out_ << record(event) << std::flush;
  if (!out_) throw Error("cannot write TensorBoard event file '" + path_ + "'");
}

void keep_scalars(const std::string& path, const std::function<bool(const ScalarEvent&)>& keep) {
  std::string kept;
  for (const std::string& event : read_records(path)) {
    const std::optional<ScalarEvent> s = scalar_of(event);
    if (!s || keep(*s)) kept += record(event);
  }
  write_file_atomic(path, kept);
}

}  // namespace sd::io
