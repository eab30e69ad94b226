#pragma once

namespace sd {

// LibTorch picks one thread on small VMs unless told; `requested` <= 0 means all cores.
// Returns the number of intra-op threads now in use.
int configure_threads(int requested);

// The spin count LibTorch's OpenMP threads run with: by default GNU OpenMP spins 300,000
// times at every barrier before sleeping, which on a machine shared with other processes
// burns the cores the other threads need and slows every step. libgomp reads it
// from the environment once, when it is loaded, so unless the user set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT the program starts itself again with GOMP_SPINCOUNT=kOpenMPSpinCount.
// Call first thing in main; returns only if no restart was needed (or it failed).
inline constexpr const char* kOpenMPSpinCount = "1000";
void restart_with_openmp_spin_count(char** argv);

// The spin count in effect ("default" when neither variable is set).
const char* openmp_wait_setting();

}  // namespace sd
