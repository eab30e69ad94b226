#include "common/pipeline.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "models/image_encoder.h"

namespace fs = std::filesystem;

namespace sd::testing {

const char* const kSmallStudent =
    R"({"embed_dims": [16, 32, 64, 320], "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 5],
        "window_sizes": [7, 7, 14, 7]})";

std::string PipelineSuite::dir_;
std::optional<ModelFolder> PipelineSuite::teacher_;

void PipelineSuite::make_folder(const std::string& prefix, int64_t student_seed) {
  teacher_ = first_folder(false);
  if (!teacher_) throw std::runtime_error("no ViT folder under " + fixtures_root());
  dir_ = make_temp_dir(prefix);
  std::ofstream(dir_ + "/teacher.json") << teacher_->config.dump();
  std::ofstream(dir_ + "/student.json") << kSmallStudent;
  at::manual_seed(student_seed);
  auto student = models::make_image_encoder(models::resolve_encoder(dir_ + "/student.json"));
  io::write_state_dict(dir_ + "/student.pth", io::state_dict(*student));
}

void PipelineSuite::TearDownTestSuite() {
  if (!dir_.empty()) fs::remove_all(dir_);
  dir_.clear();
  teacher_.reset();
}

void PipelineSuite::SetUp() { SD_REQUIRE_FIXTURES(); }

const std::string& PipelineSuite::dir() { return dir_; }
const ModelFolder& PipelineSuite::teacher() { return *teacher_; }

ProgramRun PipelineSuite::embed_sample() {
  return run_program("--threads 2 embed --teacher " + dir_ + "/teacher.json --teacher-checkpoint " +
                     teacher_->file("weights.pth") + " --data " + data_sample() + " --store " +
                     dir_ + "/store --cache-images");
}

namespace {

std::vector<nlohmann::json> metric_lines(const std::string& run, const char* field) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains(field)) out.push_back(j[field]);
  }
  return out;
}

}  // namespace

std::vector<double> step_losses(const std::string& run) {
  std::vector<double> out;
  for (const auto& loss : metric_lines(run, "loss"))  // null when it was not finite
    out.push_back(loss.is_number() ? loss.get<double>() : NAN);
  return out;
}

std::vector<double> validation_scores(const std::string& run) {
  std::vector<double> out;
  for (const auto& score : metric_lines(run, "val_score")) out.push_back(score.get<double>());
  return out;
}

void expect_same_weights(const std::string& a, const std::string& b) {
  io::StateDict x = io::read_state_dict(a), y = io::read_state_dict(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].first, y[i].first);
    EXPECT_TRUE(at::equal(x[i].second, y[i].second)) << x[i].first << " differs";
  }
}

void expect_other_teacher_refused(const std::string& message, const std::string& store,
                                  const std::string& teacher) {
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      message, m,
      std::regex("store '([^']*)' was made by another teacher: a \\w+ \\w+ encoder with weights "
                 "'[^']*' \\(sha256 [0-9a-f]{12}\\.\\.\\.\\), not the one given, a \\w+ \\w+ "
                 "encoder \\(teacher\\.(\\w+) is (.*) in the store, expected (.*)\\)\\. Give the "
                 "teacher that made the store, or make a store of this teacher's embeddings with "
                 "`samdistill embed` \\(another --store\\)")))
      << message;
  EXPECT_EQ(m[1].str(), store);
  const nlohmann::json made_by =
      nlohmann::json::parse(std::ifstream(store + "/manifest.json"))["teacher"];
  const nlohmann::json named = models::to_json(models::resolve_encoder(teacher));
  const std::string key = m[2];
  ASSERT_TRUE(made_by.contains(key) && named.contains(key)) << message;
  EXPECT_EQ(m[3].str(), made_by[key].dump());
  EXPECT_EQ(m[4].str(), named[key].dump());
  EXPECT_NE(made_by[key], named[key]);
}

SignalledRun signal_when(const std::string& args, const std::string& log,
                         const std::function<bool()>& ready, const std::vector<int>& signals) {
  const std::string command = binary_path() + " " + args + " >" + log + " 2>&1";
  SignalledRun result;
  pid_t child = fork();
  if (child < 0) return result;
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  auto ended = [&] { return waitpid(child, &status, WNOHANG) == child; };
  bool done = false;
  for (int i = 0; i < 3000 && !(done = ended()) && !ready(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    kill(child, SIGSTOP);
    done = waitpid(child, &status, WUNTRACED) == child && !WIFSTOPPED(status);
    result.sent = !done;
    for (size_t i = 0; result.sent && i < signals.size(); ++i) kill(child, signals[i]);
    if (!done) {
      kill(child, SIGCONT);
      waitpid(child, &status, 0);
    }
  }
  result.end_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  result.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return result;
}

SignalledRun signal_after_steps(const std::string& args, const std::string& run, size_t steps,
                                const std::vector<int>& signals) {
  return signal_when(
      args, run + ".log", [&] { return step_losses(run).size() >= steps; }, signals);
}

bool kill_after_steps(const std::string& args, const std::string& run, size_t steps) {
  const SignalledRun r = signal_after_steps(args, run, steps, {SIGKILL});
  return r.sent && r.end_signal == SIGKILL;
}

}  // namespace sd::testing
