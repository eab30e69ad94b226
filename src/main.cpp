#include "cli/app.h"
#include "util/memory.h"

int main(int argc, char** argv) {
  sd::reuse_freed_memory();
  return sd::cli::run(argc, argv);
}
