// The rendezvous and its errors: a port in use, an unreachable master, ranks that disagree.
#include "distributed/group.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <future>

#include "common/fixtures.h"
#include "distributed/loopback_world.h"
#include "util/device.h"

namespace sd::distributed {
namespace {

std::string connect_error(const World& w, int timeout_s, bool cuda = false) {
  try {
    connect(w, GroupOptions{std::chrono::seconds(timeout_s), cuda});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Runs in a build without gloo's headers (cmake -DSAMDISTILL_WITH_DIST=OFF); skips in others.
TEST(Rendezvous, ABuildWithoutDistributedSupportRefusesALaunch) {
  if (supported()) GTEST_SKIP() << "this build has distributed support";
  World w = loopback_world(1, 29500);
  w.launcher = "torchrun";
  EXPECT_EQ(connect_error(w, 1),
            "this build has no distributed support: torchrun asks for 2 processes (rebuild with "
            "LibTorch's c10d and gloo's headers, libgloo-dev)");
}

TEST(Rendezvous, APortInUseIsNamed) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  const int port = free_port();
  address.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  EXPECT_EQ(connect_error(loopback_world(0, port), 5),
            "rank 0 of 2: port " + std::to_string(port) +
                " is in use: the rendezvous cannot listen there (choose another MASTER_PORT)");
  close(fd);
}

TEST(Rendezvous, AnUnreachableMasterTimesOut) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const auto start = std::chrono::steady_clock::now();
  const std::string error = connect_error(loopback_world(1, free_port()), 2);
  EXPECT_PRED2(testing::contains, error,
               "rank 1 of 2: could not reach the rendezvous at 127.0.0.1:");
  EXPECT_PRED2(testing::contains, error, "within 2 s (is rank 0 running there?");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

// NCCL on this rank's GPU (LOCAL_RANK's) for a run on CUDA; Gloo on the CPU for one on the CPU,
// GPUs or not.
TEST(Rendezvous, TheGroupIsOnTheLocalRanksGpuForARunOnCuda) {
  World w = loopback_world(1, 29500);
  w.local_rank = 1;
  w.local_size = 2;
  const GroupOptions cpu{std::chrono::seconds(1), false}, cuda{std::chrono::seconds(1), true};
  EXPECT_EQ(group_device(w, cpu, 2), at::Device(at::kCPU));
  EXPECT_EQ(group_device(w, cpu, 0), at::Device(at::kCPU));
  EXPECT_EQ(group_device(w, cuda, 2), at::Device(at::kCUDA, 1));
  EXPECT_EQ(group_device(w, cuda, 1), at::Device(at::kCUDA, 0));
  EXPECT_THROW(group_device(w, cuda, 0), Error);
}

// A run on CUDA without a GPU, or in a build without NCCL, stops before the rendezvous (rank 1
// would otherwise wait for rank 0), saying why.
TEST(Rendezvous, ARunOnCudaWithoutAGpuOrNcclStopsBeforeTheRendezvous) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  if (nccl_supported() && cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const auto start = std::chrono::steady_clock::now();
  const std::string error = connect_error(loopback_world(1, free_port()), 10, true);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  if (nccl_supported())
    EXPECT_EQ(error,
              "rank 1 of 2: the run is on CUDA but this process sees no CUDA device (test local "
              "rank 0)");
  else
    EXPECT_PRED2(testing::contains, error, "this build has no NCCL support");
}

// What `check` throws on rank `rank` ("": nothing).
std::string error_as(int rank, int port, const std::function<void(Group&)>& check) {
  std::unique_ptr<Group> g =
      connect(loopback_world(rank, port), GroupOptions{std::chrono::seconds(20)});
  try {
    check(*g);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Each rank's digest of what must agree; both ranks stop with the same message.
std::string check_as(int rank, int port, const std::string& value) {
  return error_as(rank, port, [&](Group& g) { check_same_everywhere(g, "config", value); });
}

TEST(Rendezvous, RanksThatDisagreeAllStopWithOneMessage) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const int port = free_port();
  auto other = std::async(std::launch::async, check_as, 1, port, "bbbb");
  const std::string zero = check_as(0, port, "aaaa");
  EXPECT_EQ(zero, other.get());
  EXPECT_PRED2(testing::contains, zero, "rank 1 has another config than rank 0");
}

TEST(Rendezvous, RanksThatAgreeGoOn) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const int port = free_port();
  auto other = std::async(std::launch::async, check_as, 1, port, "same");
  EXPECT_EQ(check_as(0, port, "same"), "");
  EXPECT_EQ(other.get(), "");
}

// check_same_run: rank 1's config and store against rank 0's ({"lr": 1}, store "s"); both ranks
// stop with the same message. A store on one rank alone differs too.
TEST(Rendezvous, ARunsRanksCompareTheirConfigsAndStores) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  auto check_run = [](const nlohmann::json& config, const std::string& store) {
    const int port = free_port();
    auto other = std::async(std::launch::async, error_as, 1, port,
                            [&](Group& g) { check_same_run(g, config, store); });
    const std::string zero = error_as(0, port, [](Group& g) {
      check_same_run(g, {{"lr", 1}}, "s");
    });
    EXPECT_EQ(zero, other.get());
    return zero;
  };
  EXPECT_EQ(check_run({{"lr", 1}}, "s"), "");
  EXPECT_PRED2(testing::contains, check_run({{"lr", 2}}, "s"),
               "rank 1 has another config than rank 0");
  EXPECT_PRED2(testing::contains, check_run({{"lr", 1}}, ""),
               "rank 1 has another store (manifest digest) than rank 0");
}

// Rank 0's group after one all-reduce with rank 1, whose group has gone away since.
std::unique_ptr<Group> rank0_whose_peer_left() {
  const int port = free_port();
  auto other = std::async(std::launch::async, [port] {
    std::unique_ptr<Group> g =
        connect(loopback_world(1, port), GroupOptions{std::chrono::seconds(20)});
    max_over_ranks(*g, 1);
  });
  std::unique_ptr<Group> g =
      connect(loopback_world(0, port), GroupOptions{std::chrono::seconds(5)});
  EXPECT_EQ(max_over_ranks(*g, 0), 1);
  other.get();
  return g;
}

TEST(Rendezvous, ALostPeerIsNamed) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  std::unique_ptr<Group> g = rank0_whose_peer_left();
  try {
    max_over_ranks(*g, 7);
    ADD_FAILURE() << "an all-reduce without the other rank succeeded";
  } catch (const PeerLost& e) {
    EXPECT_PRED2(testing::contains, std::string(e.what()),
                 "rank 0 of 2: an all-reduce failed: another rank stopped");
  }
}

// Rank 1's part and rank 0's meet on rank 0, in rank order; rank 1 gets none back.
TEST(Rendezvous, GatherBringsEveryPartToRankZero) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const int port = free_port();
  auto other = std::async(std::launch::async, [port] {
    std::unique_ptr<Group> g =
        connect(loopback_world(1, port), GroupOptions{std::chrono::seconds(20)});
    return gather_to_rank0(*g, "test", std::string(100000, 'b')).size();
  });
  std::unique_ptr<Group> g =
      connect(loopback_world(0, port), GroupOptions{std::chrono::seconds(20)});
  EXPECT_EQ(gather_to_rank0(*g, "test", "a"),
            (std::vector<std::string>{"a", std::string(100000, 'b')}));
  EXPECT_EQ(other.get(), 0u);
}

TEST(Rendezvous, AGatherWithoutAPeerNamesTheRank) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  std::unique_ptr<Group> g = rank0_whose_peer_left();
  try {
    gather_to_rank0(*g, "test", "a");
    ADD_FAILURE() << "a gather without the other rank succeeded";
  } catch (const PeerLost& e) {
    EXPECT_PRED2(testing::contains, std::string(e.what()), "rank 0 of 2: ");
  }
}

}  // namespace
}  // namespace sd::distributed
