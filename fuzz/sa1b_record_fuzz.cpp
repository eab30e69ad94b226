// One SA-1B record (sa_<id>.json): JSON, the annotations and their RLE masks.
#include <nlohmann/json.hpp>

#include "data/records.h"
#include "data/rle.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    const sd::data::Record r = sd::data::parse_sa1b_record(j, "fuzz");
    for (const auto& a : r.annotations) {
      sd::data::rle_area(a.segmentation);
      sd::data::rle_bbox(a.segmentation);
      if (int64_t(a.segmentation.height) * a.segmentation.width <= (1 << 16))
        sd::data::rle_decode(a.segmentation);
    }
  } catch (const sd::Error&) {
  }
  return 0;
}
