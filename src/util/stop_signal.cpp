#include "util/stop_signal.h"

#include <atomic>
#include <csignal>

namespace sd {
namespace {

// Atomic, not a volatile flag: two signals at once may run the handler on two threads, and
// exactly one of them must be the first.
std::atomic<int> received{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler may only use lock-free atomics");

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  if (!received.compare_exchange_strong(none, signal)) {  // the second: the default action
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

}  // namespace

void catch_stop_signals() {
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() { return received.load(); }

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(signal);
  }
}

}  // namespace sd
