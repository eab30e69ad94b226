// The unpickler alone (data.pkl), with every storage present and zero-filled: the fuzzer
// reaches the tensor checks without having to build a zip around them.
#include <ATen/ATen.h>

#include "io/pickle.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto storage = [](const std::string&, at::ScalarType dtype, int64_t numel) {
    if (numel > (1 << 16)) throw sd::Error("storage too large for the fuzzer");
    return at::zeros({numel}, dtype).storage();
  };
  try {
    sd::io::unpickle(std::string_view(reinterpret_cast<const char*>(data), size), storage, "fuzz");
  } catch (const sd::Error&) {
  }
  return 0;
}
