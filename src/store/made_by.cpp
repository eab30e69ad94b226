// check_made_by (store/manifest.h): apart from the manifest's own reading, since it resolves a
// teacher checkpoint's path through the run-folder code, which the fuzzers of the manifest do not
// build.
#include "io/weights.h"
#include "models/config.h"
#include "store/manifest.h"
#include "util/sha256.h"

namespace sd::store {

void check_made_by(const Manifest& actual, const std::string& teacher,
                   const std::string& teacher_checkpoint, const std::string& store) {
  Manifest expected = actual;
  if (!teacher.empty()) expected.teacher = models::to_json(models::resolve_encoder(teacher));
  if (!teacher_checkpoint.empty()) {  // a mismatch names the store's checkpoint and this one
    expected.checkpoint_name = io::resolve_weights(teacher_checkpoint);
    expected.checkpoint_sha256 = sha256_file(expected.checkpoint_name);
  }
  check_compatible(expected, actual, store);
}

}  // namespace sd::store
