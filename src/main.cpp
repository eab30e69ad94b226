#include "cli/app.h"
#include "util/memory.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  sd::restart_with_openmp_spin_count(argv);
  sd::reuse_freed_memory();
  return sd::cli::run(argc, argv);
}
