// A COCO instance file: images, annotations, polygons and RLE.
#include "data/records.h"
#include "input_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sd::data::read_coco_instances(sd::fuzz::input_file(data, size, ".json"), "/nonexistent");
  } catch (const sd::Error&) {
  }
  return 0;
}
