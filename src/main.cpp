#include "cli/app.h"
#include "util/memory.h"
#include "util/threads.h"

// jemalloc's settings, read where it is the program's malloc (SAMDISTILL_ALLOCATOR): freed pages
// stay with the process for the next step instead of going back to the system to be faulted in
// again, as glibc's are kept by reuse_freed_memory(). MALLOC_CONF adds to or overrides them.
extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1";
}

int main(int argc, char** argv) {
  sd::restart_with_openmp_spin_count(argv);
  sd::reuse_freed_memory();
  return sd::cli::run(argc, argv);
}
