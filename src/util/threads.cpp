#include "util/threads.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace sd {

int configure_threads(int requested) {
  int n = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  if (n < 1) n = 1;
  at::set_num_threads(n);
  return at::get_num_threads();
}

void restart_with_openmp_spin_count(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (setenv("GOMP_SPINCOUNT", kOpenMPSpinCount, 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: go on with the default
  unsetenv("GOMP_SPINCOUNT");
}

const char* openmp_wait_setting() {
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) return policy;
  if (const char* spin = std::getenv("GOMP_SPINCOUNT")) return spin;
  return "default";
}

}  // namespace sd
