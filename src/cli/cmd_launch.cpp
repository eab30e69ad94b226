// `samdistill launch --nproc-per-node N -- train ...`: torchrun's job without Python. N local
// workers of this program, each with torchrun's variables, meet on a free port of 127.0.0.1.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "util/error.h"
#include "util/log.h"
#include "util/stop_signal.h"

namespace sd::cli {
namespace {

struct LaunchArgs {
  int nproc = 1;
  int grace_s = 30;
  std::vector<std::string> command;
};

volatile std::sig_atomic_t last_signal = 0, signals_received = 0;

extern "C" void on_launcher_signal(int signal) {
  last_signal = signal;
  signals_received = signals_received + 1;
}

void catch_signals_to_forward() {
  struct sigaction action = {};
  action.sa_handler = on_launcher_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  bool running = true;
  int status = 0;   // exit status; 128 + signal when a signal ended it
  std::string how;  // "exited with status 1", "was killed by SIGKILL"
};

pid_t start_worker(const std::string& program, const std::vector<std::string>& command, int rank,
                   int nproc, int port) {
  const pid_t pid = fork();
  if (pid < 0) throw Error("launch: cannot start a worker process (fork failed)");
  if (pid > 0) return pid;
  // Its own process group: a Ctrl-C at the terminal reaches the launcher alone, which forwards
  // it once (a worker's second signal would end it without its checkpoint). It ends with the
  // launcher.
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  unsetenv("TORCHELASTIC_USE_AGENT_STORE");
  setenv("SAMDISTILL_LAUNCH", "1", 1);  // the ranks' logs name this launcher, not torchrun
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(program.c_str(), argv.data());
  _exit(127);
}

// Records how a worker ended; whether it did.
bool reap(Worker& w) {
  int status = 0;
  if (waitpid(w.pid, &status, WNOHANG) != w.pid) return false;
  w.running = false;
  if (WIFSIGNALED(status)) {
    w.status = 128 + WTERMSIG(status);
    w.how = "was killed by " +
            (WTERMSIG(status) == SIGKILL ? std::string("SIGKILL") : signal_name(WTERMSIG(status)));
  } else {
    w.status = WEXITSTATUS(status);
    w.how = "exited with status " + std::to_string(w.status);
  }
  return true;
}

void signal_running(std::vector<Worker>& workers, int signal) {
  for (Worker& w : workers)
    if (w.running) kill(w.pid, signal);
}

int run_launch(const LaunchArgs& a) {
  if (a.command.empty())
    throw Error("launch: no command given (launch --nproc-per-node N -- train ...)");
  const std::string program = std::filesystem::read_symlink("/proc/self/exe").string();
  const int port = distributed::free_port();
  catch_signals_to_forward();
  log::info("launch: " + std::to_string(a.nproc) +
            " workers, rendezvous at 127.0.0.1:" + std::to_string(port));
  std::vector<Worker> workers;
  for (int r = 0; r < a.nproc; ++r) {
    Worker w;
    w.rank = r;
    w.pid = start_worker(program, a.command, r, a.nproc, port);
    workers.push_back(w);
    log::info("launch: rank " + std::to_string(r) + " (pid " + std::to_string(workers.back().pid) +
              ")");
  }
  int forwarded = 0, failed = -1;
  std::chrono::steady_clock::time_point stop_sent;
  size_t running = workers.size();
  while (running > 0) {
    if (signals_received != forwarded) {  // SIGINT / SIGTERM: every worker gets it
      forwarded = signals_received;
      signal_running(workers, last_signal);
    }
    for (Worker& w : workers) {
      if (!w.running || !reap(w)) continue;
      --running;
      if (w.status == 0 || failed >= 0) continue;
      failed = w.rank;
      if (forwarded > 0) continue;  // stopping on a signal: the others stop on it too
      log::error("launch: rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) +
                 ") " + w.how + "; stopping the other workers");
      signal_running(workers, SIGTERM);
      stop_sent = std::chrono::steady_clock::now();
    }
    if (failed >= 0 && forwarded == 0 && running > 0 &&
        std::chrono::steady_clock::now() - stop_sent > std::chrono::seconds(a.grace_s)) {
      log::error("launch: workers still running " + std::to_string(a.grace_s) +
                 " s after SIGTERM: killing them");
      signal_running(workers, SIGKILL);
      stop_sent = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (failed < 0) return 0;
  const Worker& first = workers[static_cast<size_t>(failed)];
  if (forwarded == 0)
    log::error("launch: failed: rank " + std::to_string(first.rank) + " " + first.how);
  return first.status;
}

}  // namespace

void add_launch_command(CLI::App& app, const Globals&) {
  auto a = std::make_shared<LaunchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "launch",
      "Start N local workers of a data-parallel command (torchrun's variables, a free port), "
      "forward SIGINT/SIGTERM to them, and stop them all when one fails: "
      "launch --nproc-per-node 2 -- train --config ...");
  cmd->add_option("--nproc-per-node", a->nproc, "Workers to start on this machine")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--grace", a->grace_s,
                  "Seconds the other workers get to stop after one failed, before SIGKILL")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("command", a->command, "The subcommand and its arguments, after --")->required();
  cmd->callback([a] {
    const int status = run_launch(*a);
    if (status != 0) throw ExitStatus{status};
  });
}

}  // namespace sd::cli
