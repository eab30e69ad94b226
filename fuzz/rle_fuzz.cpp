// A compressed RLE string (COCO's form) for a mask whose size the first two bytes give.
#include "data/rle.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int height = data[0], width = data[1];
  try {
    const sd::data::Rle rle = sd::data::rle_from_string(
        std::string_view(reinterpret_cast<const char*>(data + 2), size - 2), height, width, "fuzz");
    sd::data::rle_decode(rle);
    if (sd::data::rle_from_string(sd::data::rle_to_string(rle), height, width, "again").counts !=
        rle.counts)
      __builtin_trap();  // the string form must round-trip
  } catch (const sd::Error&) {
  }
  return 0;
}
