#include "distill/export.h"

#include <filesystem>

#include "io/checkpoint.h"
#include "io/config.h"
#include "models/sam.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::distill {

io::StateDict assemble_sam(const io::StateDict& student_encoder,
                           const models::EncoderConfig& student_config,
                           const std::string& decoder_from) {
  io::StateDict decoder_source = io::read_state_dict(decoder_from);
  io::StateDict out;
  for (const auto& [key, value] : student_encoder) out.emplace_back("image_encoder." + key, value);
  size_t taken = 0;
  for (const auto& entry : decoder_source) {
    if (entry.first.rfind("prompt_encoder.", 0) == 0 || entry.first.rfind("mask_decoder.", 0) == 0) {
      out.push_back(entry);
      ++taken;
    }
  }
  if (taken == 0)
    throw Error("'" + decoder_from + "' has no prompt_encoder.* / mask_decoder.* entries: "
                "--decoder-from needs a full SAM checkpoint");
  models::Sam sam = models::build_sam(student_config);
  io::load_state_dict(*sam, out, "", "the exported checkpoint");
  return io::state_dict(*sam);  // official order
}

models::EncoderConfig student_config_of(const std::string& student, const std::string& fallback) {
  fs::path p(student);
  for (fs::path dir : {p, p.parent_path(), p.parent_path().parent_path()}) {
    fs::path config = dir / "config.json";
    if (!dir.empty() && fs::is_regular_file(config)) {
      nlohmann::json j = io::read_json_file(config.string());
      if (j.contains("student_model") && j["student_model"].is_string())
        return models::resolve_encoder(j["student_model"].get<std::string>());
    }
  }
  return models::resolve_encoder(fallback);
}

}  // namespace sd::distill
