#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

// TensorBoard event files: TFRecord framing (length, masked CRC-32C, data, masked CRC-32C)
// around tensorboard.Event messages (event.proto, summary.proto) holding scalars and PNG
// images. The few fields used are encoded by hand, so the core needs no protobuf library.
namespace sd::io {

// "events.out.tfevents.*": what TensorBoard reads.
bool is_event_file(const std::string& name);
// The event files directly in `dir`, in name order (the order they were written).
std::vector<std::string> event_files(const std::string& dir);

// A new file events.out.tfevents.<seconds>.<host> in `dir` (created when missing), opened with
// the file_version event; each event reaches the file before the call returns, so a kill
// loses at most the one being written. sd::Error naming the file when it cannot be written.
class EventWriter {
 public:
  explicit EventWriter(const std::string& dir);

  void scalar(const std::string& tag, int64_t step, double value);
  // An RGB PNG (encoded bytes) of width x height pixels.
  void image(const std::string& tag, int64_t step, const std::string& png, int64_t width,
             int64_t height);
  const std::string& path() const { return path_; }

 private:
  void write_event(int64_t step, const std::string& what);

  std::string path_;
  std::ofstream out_;
};

// A scalar of an event file.
struct ScalarEvent {
  std::string tag;
  int64_t step = 0;
  double value = 0;
};

// Rewrites `path` (atomically) with its scalar events that `keep` accepts; every other event
// stays, and a record torn by a kill at the end is dropped.
void keep_scalars(const std::string& path, const std::function<bool(const ScalarEvent&)>& keep);

}  // namespace sd::io
