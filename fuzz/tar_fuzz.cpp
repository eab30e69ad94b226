// A tar given to --data: its index (libarchive's header parsing and our offsets), then every
// member read back at its offset.
#include "data/tar.h"
#include "input_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tar = sd::data::TarFile::open(sd::fuzz::input_file(data, size, ".tar"));
    for (const sd::data::TarMember& m : tar->members()) tar->read(m);
  } catch (const sd::Error&) {
  }
  return 0;
}
