#pragma once
#include <string>

namespace sd {

// Peak resident set size of this process, in MiB: since the start or the last
// reset_peak_rss().
double peak_rss_mb();

// Starts a new peak at the current resident set size (Linux); false where that is not
// possible, and the peak then stays the process's.
bool reset_peak_rss();

// Hands the heap's free memory back to the system (glibc's malloc_trim, jemalloc's purge), so that
// a figure measured next starts from what is live, not from what an earlier one kept.
void release_free_memory();

// Bytes the program holds from malloc now (live allocations: glibc's mallinfo2, jemalloc's
// stats.allocated), in MiB; 0 under another allocator.
double heap_in_use_mb();

// The file of the malloc this process runs on, e.g. "libc.so.6", "libmimalloc.so.2".
std::string malloc_library();

// How the malloc keeps freed memory, as it reports it: jemalloc's decay options, e.g.
// "dirty_decay_ms:-1,muzzy_decay_ms:-1" (never handed back); "" for a malloc that cannot say.
std::string malloc_settings();

// Resident set size now, in MiB (0 where /proc is missing).
double rss_mb();

// Serves every allocation from the heap and keeps up to 1 GiB of freed memory there, instead
// of glibc's fresh mmap (and page faults) per tensor above 32 MiB: a CPU training step
// allocates and frees GiBs of activations, and spent much of its time in the kernel.
// Call once, before any thread starts.
void reuse_freed_memory();

}  // namespace sd
