#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

namespace sd {

// Seconds on the steady clock since `start`.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The median of timings: the middle one, or the mean of the two middle ones of an even count
// (the upper of two would report a run's worst). 0 for none.
inline double median(std::vector<double> xs) {
  if (xs.empty()) return 0.0;
  std::sort(xs.begin(), xs.end());
  const size_t mid = xs.size() / 2;
  return xs.size() % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

}  // namespace sd
