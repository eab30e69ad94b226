// The checkpoint reader end to end: zip directory, LibTorch's zip reader, CRCs, pickle.
#include "input_file.h"
#include "io/checkpoint.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sd::io::read_state_dict(sd::fuzz::input_file(data, size, ".pth"));
  } catch (const sd::Error&) {
  }
  return 0;
}
