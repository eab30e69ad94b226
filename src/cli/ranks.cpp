#include "cli/commands.h"
#include "util/log.h"

namespace sd::cli {

std::unique_ptr<distributed::Group> join_ranks(const Globals& globals, DeviceChoice device) {
  const distributed::World& world = globals.world;
  if (!world.distributed()) return nullptr;
  distributed::GroupOptions options;
  options.timeout = std::chrono::seconds(globals.dist_timeout_s);
  options.cuda = resolve_device(device).is_cuda();
  log::info(world.launcher + " launch: " + world.name() + ", rendezvous at " + world.master_addr +
            ":" + std::to_string(world.master_port) + (options.cuda ? " (NCCL)" : " (Gloo)"));
  return distributed::connect(world, options);
}

}  // namespace sd::cli
