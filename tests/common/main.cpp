#include <gtest/gtest.h>

#include "util/memory.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  sd::reuse_freed_memory();  // as the program does
  ::testing::InitGoogleTest(&argc, argv);
  sd::configure_threads(0);
  return RUN_ALL_TESTS();
}
