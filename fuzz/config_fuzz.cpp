// JSON configs: a model config file, and a run config laid over its defaults.
#include <nlohmann/json.hpp>

#include "input_file.h"
#include "io/config.h"
#include "models/config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json defaults = {
      {"lr", 1e-3}, {"epochs", 8}, {"name", "x"}, {"amp", true}, {"dims", {64, 128}}};
  try {
    const nlohmann::json j = sd::io::read_json_file(sd::fuzz::input_file(data, size, ".json"));
    try {
      sd::models::encoder_config_from_json(j, "fuzz");
    } catch (const sd::Error&) {
    }
    sd::io::merge_config(defaults, j, "fuzz");
  } catch (const sd::Error&) {
  }
  return 0;
}
