#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "bench/data.h"
#include "bench/distill.h"
#include "bench/eval.h"
#include "bench/models.h"
#include "bench/segment.h"
#include "bench/store.h"
#include "cli/commands.h"
#include "models/sam.h"
#include "util/error.h"
#include "util/log.h"
#include "util/memory.h"
#include "util/names.h"
#include "util/threads.h"

namespace sd::cli {
namespace {

struct BenchArgs {
  bool json = false;
  int repeats = 3;
  bench::TrainBench train;
  std::string data = "data/sample";
  std::string teacher = "vit_b";
  std::string infer_device = "cpu";
  std::string infer_amp = "off";
  int infer_batch = 4;
  std::vector<std::string> only;
  std::string segment_student, segment_image;
};

const std::vector<std::string> kParts = {"encoder", "memory",  "decoder", "data",
                                         "store",   "embed",   "eval",    "train",
                                         "dist",    "segment", "infer"};

std::string part_list() {
  std::string out;
  for (const auto& p : kParts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

// `samdistill <args>` as `processes` launched workers (one: the program itself), waited for.
void run_workers(const std::vector<std::string>& args, int processes) {
  std::vector<std::string> argv{std::filesystem::read_symlink("/proc/self/exe").string()};
  if (processes > 1)
    argv.insert(argv.end(), {"launch", "--nproc-per-node", std::to_string(processes), "--"});
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t child = fork();
  if (child < 0) throw Error("bench: cannot start a process (fork failed)");
  if (child == 0) {
    std::vector<char*> c;
    for (std::string& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    execv(c[0], c.data());
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("bench: the run of " + std::to_string(processes) + " process(es) failed");
}

nlohmann::json run_part(const std::string& part, const BenchArgs& a) {
  log::info("bench: " + part);
  if (part == "encoder") return bench::bench_encoder(a.repeats);
  if (part == "memory") return bench::bench_train_memory();
  if (part == "decoder")
    return bench::bench_decoder(models::build_sam(models::encoder_preset("vit_t")), a.repeats);
  if (part == "data") return bench::bench_data(a.data);
  if (part == "store") return bench::bench_store();
  if (part == "embed") return bench::bench_embed(a.teacher, a.data);
  if (part == "eval") return bench::bench_eval(16);
  if (part == "segment") return bench::bench_segment(a.segment_student, a.segment_image);
  if (part == "infer")
    return bench::bench_infer(parse_device(a.infer_device),
                              parse_word<models::Amp>(a.infer_amp, "--infer-amp"),
                              models::resolve_encoder(a.teacher), a.infer_batch, a.repeats);
  bench::TrainBench train = a.train;
  train.folder = a.data;
  if (part == "dist")
    return distributed::supported() ? bench::bench_data_parallel(train, run_workers)
                                    : nlohmann::json{{"dist_setting",
                                                      "this build has no distributed "
                                                      "support"}};
  return bench::bench_train(train);
}

void run_bench(const BenchArgs& a) {
  std::set<std::string> only(a.only.begin(), a.only.end());
  for (const auto& p : only)
    if (std::find(kParts.begin(), kParts.end(), p) == kParts.end())
      throw Error("bench --only: unknown part '" + p + "' (" + part_list() + ")");
  nlohmann::json figures = nlohmann::json::object();
  for (const auto& part : kParts)
    if (only.empty() || only.count(part)) figures.update(run_part(part, a));
  figures["omp_wait"] = openmp_wait_setting();
  figures["malloc"] = malloc_library();
  figures["malloc_settings"] = malloc_settings();
  if (a.json) {
    std::cout << json_text(figures) << "\n";
    return;
  }
  for (auto it = figures.begin(); it != figures.end(); ++it)
    std::cout << it.key() << std::string(it.key().size() < 32 ? 32 - it.key().size() : 1, ' ')
              << it.value().dump() << "\n";
}

}  // namespace

void add_bench_command(CLI::App& app, const Globals&) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure every figure the project tracks: encoder latency, training step, decoder "
      "per prompt, preprocessing, RLE, store I/O, embed throughput, trainer throughput (medians)");
  cmd->add_flag("--json", a->json, "One JSON object; keys name the figure and unit");
  cmd->add_option("--repeats", a->repeats, "Timed runs per model figure (after one warm-up)")
      ->capture_default_str();
  cmd->add_option("--train-steps", a->train.steps, "Optimiser steps per trainer figure")
      ->capture_default_str();
  cmd->add_option("--train-device", a->train.device, "Trainer figures on cpu or cuda")
      ->capture_default_str();
  cmd->add_option("--train-amp", a->train.amp,
                  "Mixed precision of the trainer figures: off, bf16 (CPUs and CUDA), fp16 (CUDA)")
      ->capture_default_str();
  cmd->add_option("--train-batch-size", a->train.batch_size, "Batch size of the trainer figures")
      ->capture_default_str();
  cmd->add_option("--data", a->data, "SA-1B folder for the data and trainer figures")
      ->capture_default_str();
  cmd->add_option("--teacher", a->teacher,
                  "Teacher (random weights) for the embed and infer figures: preset or JSON config")
      ->capture_default_str();
  cmd->add_option("--infer-device", a->infer_device,
                  "Device of the infer figures (encoder forwards): cpu, cuda or auto")
      ->capture_default_str();
  cmd->add_option("--infer-amp", a->infer_amp,
                  "Mixed precision of the infer figures: off, bf16 (CPUs and CUDA), fp16 (CUDA)")
      ->capture_default_str();
  cmd->add_option("--infer-batch", a->infer_batch, "Batch of the infer figure of the teacher")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--segment-student", a->segment_student,
                  "Full SAM checkpoint for the segment figures (default: vit_t, random weights)");
  cmd->add_option(
      "--segment-image", a->segment_image,
      "Image for the segment figures (default: data/sample/sa_100001.jpg at 1500x2250)");
  cmd->add_option("--only", a->only, "Parts to run: " + part_list())->delimiter(',');
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace sd::cli
