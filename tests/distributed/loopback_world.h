#pragma once
#include "distributed/world.h"

namespace sd::distributed {

// Rank `rank` of a two-process world on 127.0.0.1:`port`, as the tests start it.
inline World loopback_world(int rank, int port) {
  World w;
  w.rank = rank;
  w.size = 2;
  w.master_addr = "127.0.0.1";
  w.master_port = port;
  w.launcher = "test";
  return w;
}

}  // namespace sd::distributed
