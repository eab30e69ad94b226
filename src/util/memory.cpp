#include "util/memory.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>

#include "util/text.h"

namespace sd {

namespace {

// A "Vm...:" line of /proc/self/status, in MiB; -1 where there is none.
double status_mb(const std::string& wanted) {
  std::ifstream status("/proc/self/status");
  for (std::string key; status >> key;) {
    if (key == wanted) {
      double kib = 0;
      status >> kib;
      return kib / 1024.0;
    }
    status.ignore(1 << 12, '\n');
  }
  return -1;
}

// jemalloc's control interface where jemalloc is this process's malloc (linked or preloaded),
// else null (also where jemalloc is loaded but something else serves malloc, as under ASan).
// Looked up at run time, so that nothing here depends on which malloc is linked.
using Mallctl = int (*)(const char* name, void* old, size_t* old_size, void* value, size_t size);
Mallctl jemalloc_mallctl() {
  static const Mallctl mallctl = starts_with(malloc_library(), "libjemalloc")
                                     ? reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"))
                                     : nullptr;
  return mallctl;
}

}  // namespace

double peak_rss_mb() {
  // VmHWM, which reset_peak_rss() resets; getrusage's maximum where /proc is missing.
  if (const double hwm = status_mb("VmHWM:"); hwm >= 0) return hwm;
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

bool reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";  // Linux: the peak becomes the current resident set size
  clear_refs.flush();
  return bool(clear_refs);
}

double rss_mb() { return std::max(0.0, status_mb("VmRSS:")); }

double heap_in_use_mb() {
  if (const Mallctl mallctl = jemalloc_mallctl()) {
    uint64_t epoch = 1;  // refreshes jemalloc's statistics
    mallctl("epoch", nullptr, nullptr, &epoch, sizeof epoch);
    size_t allocated = 0, size = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &size, nullptr, 0) == 0)
      return double(allocated) / (1024.0 * 1024.0);
    return 0;
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = mallinfo2();
  return double(info.uordblks + info.hblkhd) / (1024.0 * 1024.0);
#else
  return 0;
#endif
}

std::string malloc_library() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&malloc), &info) == 0 || !info.dli_fname) return "unknown";
  const std::string path = info.dli_fname;
  return path.substr(path.rfind('/') + 1);
}

std::string malloc_settings() {
  const Mallctl mallctl = jemalloc_mallctl();
  if (!mallctl) return "";
  std::string settings;
  for (const char* option : {"dirty_decay_ms", "muzzy_decay_ms"}) {
    ssize_t value = 0;
    size_t size = sizeof value;
    if (mallctl(("opt." + std::string(option)).c_str(), &value, &size, nullptr, 0) != 0) continue;
    settings += (settings.empty() ? "" : ",") + std::string(option) + ":" + std::to_string(value);
  }
  return settings;
}

void release_free_memory() {
  if (const Mallctl mallctl = jemalloc_mallctl())
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // 4096: MALLCTL_ARENAS_ALL
  malloc_trim(0);
}

void reuse_freed_memory() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace sd
