#include "util/stop_signal.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>

namespace sd {
namespace {

// Each in a child process (a death test), so that the handlers and the received signal stay
// there.
TEST(StopSignal, TheFirstSignalAsksToStopAndTheSecondEndsTheProgram) {
  EXPECT_EXIT(
      {
        catch_stop_signals();
        std::raise(SIGTERM);
        if (stop_signal() != SIGTERM) std::_Exit(1);
        std::raise(SIGINT);
        std::_Exit(0);
      },
      testing::KilledBySignal(SIGINT), "");
  EXPECT_EXIT(
      {
        catch_stop_signals();
        std::raise(SIGINT);
        std::_Exit(stop_signal() == SIGINT ? 3 : 1);
      },
      testing::ExitedWithCode(3), "");
}

TEST(StopSignal, NamesTheSignals) {
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGHUP), "signal " + std::to_string(SIGHUP));
}

}  // namespace
}  // namespace sd
