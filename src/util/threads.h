#pragma once

namespace sd {

// LibTorch picks one thread on small VMs unless told; `requested` <= 0 means all cores.
// Returns the number of intra-op threads now in use.
int configure_threads(int requested);

}  // namespace sd
