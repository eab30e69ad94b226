// The errors of a multi-process run's ranks say which rank they come from: every rank may
// print the same message (issue 33).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "common/fixtures.h"

namespace sd::testing {
namespace {

TEST(LaunchCli, ARanksErrorsNameTheRank) {
  const std::string dir = make_temp_dir("sd-launch-rank");
  const std::string args = "checkpoint " + dir + "/none.pth";
  const std::vector<std::string> alone = logged(run_program(args).output, "error");
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].rfind("rank", 0), std::string::npos) << "one process: no rank";

  // A rank as torchrun, Slurm or launch starts it.
  for (int rank : {0, 1}) {
    const ProgramRun r = run_command("RANK=" + std::to_string(rank) +
                                     " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 " +
                                     binary_path() + " " + args);
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_EQ(logged(r.output, "error"),
              std::vector<std::string>{"rank " + std::to_string(rank) + ": " + alone[0]});
  }

  // Under launch: the rank that fails first names itself, as launch names it.
  const ProgramRun launched = run_program("launch --nproc-per-node 2 -- " + args);
  EXPECT_EQ(launched.status, 1) << launched.output;
  std::smatch failed;
  ASSERT_TRUE(std::regex_search(launched.output, failed,
                                std::regex("launch: failed: rank ([01]) exited with status 1")))
      << launched.output;
  const std::vector<std::string> errors = logged(launched.output, "error");
  EXPECT_NE(std::find(errors.begin(), errors.end(), "rank " + failed[1].str() + ": " + alone[0]),
            errors.end())
      << launched.output;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::testing
