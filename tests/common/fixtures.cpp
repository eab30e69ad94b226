#include "common/fixtures.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <utility>
#include <vector>

#include "common/streams.h"
#include "io/checkpoint.h"
#include "util/device.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::testing {

std::string fixtures_root() {
  const char* env = std::getenv("SAMDISTILL_FIXTURES");
  return env && *env ? env : SAMDISTILL_FIXTURES_DEFAULT;
}

bool fixtures_present() { return fs::is_directory(fixtures_root()); }

at::Device test_device() {
  const char* env = std::getenv("SAMDISTILL_TEST_DEVICE");
  const at::Device device = parse_device(env && *env ? env : "cpu");
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  return device;
}

std::vector<ModelFolder> model_folders() {
  std::vector<ModelFolder> out;
  if (!fixtures_present()) return out;
  for (const auto& entry : fs::directory_iterator(fixtures_root())) {
    fs::path config = entry.path() / "config.json";
    if (!entry.is_directory() || !fs::exists(config)) continue;
    ModelFolder folder;
    folder.path = entry.path().string();
    folder.name = entry.path().filename().string();
    std::ifstream in(config);
    folder.config = nlohmann::json::parse(in);
    folder.tiny_vit = folder.config.contains("embed_dims");
    out.push_back(folder);
  }
  std::sort(out.begin(), out.end(),
            [](const ModelFolder& a, const ModelFolder& b) { return a.path < b.path; });
  return out;
}

std::optional<ModelFolder> first_folder(bool tiny_vit) {
  for (auto& f : model_folders())
    if (f.tiny_vit == tiny_vit) return f;
  return std::nullopt;
}

std::string source_dir() { return SAMDISTILL_SOURCE_DIR; }
std::string binary_path() { return SAMDISTILL_BINARY; }

std::string program_allocator() { return SAMDISTILL_ALLOCATOR; }
std::string data_sample() { return source_dir() + "/data/sample"; }

namespace {

// The folders make_temp_dir made, each with the process that made it.
struct TempDirs {
  std::mutex mutex;
  std::vector<std::pair<std::string, pid_t>> made;
};

TempDirs& temp_dirs() {
  static auto* dirs = new TempDirs;  // never destroyed: the exit handler reads it
  return *dirs;
}

// At exit, the folders this process made go, unless a test failed or SAMDISTILL_KEEP_TEST_FILES
// is set: then they stay for a look and are named on stderr. A forked child's exit (in_child,
// death tests, signal_when's programs) leaves its parent's folders alone.
void remove_temp_dirs() {
  TempDirs& dirs = temp_dirs();
  const std::lock_guard<std::mutex> lock(dirs.mutex);
  const bool keep =
      std::getenv("SAMDISTILL_KEEP_TEST_FILES") || !::testing::UnitTest::GetInstance()->Passed();
  for (const auto& [path, pid] : dirs.made) {
    if (pid != getpid()) continue;
    if (keep) {
      std::fprintf(stderr, "kept %s\n", path.c_str());
      continue;
    }
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
}

}  // namespace

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  static const int registered = std::atexit(remove_temp_dirs);
  (void)registered;
  TempDirs& dirs = temp_dirs();
  const std::lock_guard<std::mutex> lock(dirs.mutex);
  dirs.made.emplace_back(pattern, getpid());
  return pattern;
}

std::map<std::string, at::Tensor> load_tensors(const std::string& path) {
  io::StateDict entries = io::read_state_dict(path);
  return {entries.begin(), entries.end()};
}

std::string in_child(const std::function<std::string()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return "no pipe";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    try {
      out = fn();
    } catch (const std::exception& e) {
      out = std::string("exception: ") + e.what();
    }
    const bool sent = write(fds[1], out.data(), out.size()) == static_cast<ssize_t>(out.size());
    _exit(sent ? 0 : 3);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "crashed with signal " + std::to_string(WTERMSIG(status));
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an sd::Error, got none";
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> logged(const std::string& output, const std::string& level) {
  const std::string marker = "[" + level + "] ";
  std::vector<std::string> out;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string line = output.substr(start, end - start);
    const size_t at = line.find(marker);
    if (at != std::string::npos) out.push_back(line.substr(at + marker.size()));
    start = end + 1;
  }
  return out;
}

ProgramRun run_program(const std::string& args) { return run_program_in("", args); }

ProgramRun run_program_in(const std::string& cwd, const std::string& args) {
  return run_command((cwd.empty() ? "" : "cd '" + cwd + "' && ") + binary_path() + " " + args);
}

namespace {

// Runs `command` through the shell: its exit status, its stdout appended to `out`.
int read_command(const std::string& command, std::string& out) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  return WEXITSTATUS(pclose(pipe));
}

}  // namespace

ProgramRun run_command(const std::string& shell_command) {
  ProgramRun run;
  run.status = read_command(shell_command + " 2>&1", run.output);
  return run;
}

Streams run_command_apart(const std::string& shell_command) {
  const std::string dir = make_temp_dir("sd-stderr");
  Streams s;
  s.status = read_command(shell_command + " 2>'" + dir + "/stderr.txt'", s.out);
  std::ifstream err(dir + "/stderr.txt");
  s.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  return s;
}

}  // namespace sd::testing
