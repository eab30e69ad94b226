#pragma once

namespace sd {

// Peak resident set size of this process so far, in MiB (getrusage).
double peak_rss_mb();

// Serves every allocation from the heap and keeps up to 1 GiB of freed memory there, instead
// of glibc's fresh mmap (and page faults) per tensor above 32 MiB: a CPU training step
// allocates and frees GiBs of activations, and was spending 40% of its time in the kernel.
// Call once, before any thread starts.
void reuse_freed_memory();

}  // namespace sd
