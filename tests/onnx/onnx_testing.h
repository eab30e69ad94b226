#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "util/atomic_file.h"

// What the tests of the ONNX export run the models in: ONNX Runtime through onnxruntime-node
// (tests/onnx/node, `npm install --ignore-scripts` there) and ONNX's own checker (Debian's
// python3-onnx). Each is optional: the tests that need one skip, saying so, without it.
namespace sd::testing {

inline std::string ort_runner_dir() { return source_dir() + "/tests/onnx/node"; }

// "" when ONNX Runtime can run here, else why not.
inline std::string ort_missing() {
  if (!std::filesystem::exists(ort_runner_dir() + "/node_modules/onnxruntime-node"))
    return "onnxruntime-node is not installed (cd tests/onnx/node && npm install "
           "--ignore-scripts)";
  if (run_command("node --version").status != 0) return "node is not installed";
  return "";
}

// "" when Debian's python3-onnx is there, else why not.
inline std::string checker_missing() {
  if (run_command("/usr/bin/python3 -c 'import onnx'").status != 0)
    return "python3-onnx is not installed (apt-get install python3-onnx)";
  return "";
}

// ONNX's checker on `model`'s path (which checks its external data's files too), then with
// full_check (which infers every shape, strictly) on the model loaded with its external data;
// its messages, "" when it accepts the model.
inline std::string onnx_check(const std::string& model) {
  const ProgramRun run = run_command(
      "/usr/bin/python3 -c 'import onnx, sys; onnx.checker.check_model(sys.argv[1]); "
      "m = onnx.load(sys.argv[1]); "
      "onnx.checker.check_model(m, full_check=True); "
      "onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)' '" +
      model + "'");
  return run.status == 0 ? "" : run.output.empty() ? "failed" : run.output;
}

// The node types of `model` (type -> count), its initializer count, and how many of its
// initializers repeat another's values ("duplicates"), by python3-onnx.
inline nlohmann::json onnx_summary(const std::string& model) {
  const ProgramRun run = run_command(
      "/usr/bin/python3 -c 'import onnx, sys, json, collections; m = onnx.load(sys.argv[1]); "
      "g = m.graph; seen = collections.Counter((i.data_type, tuple(i.dims), i.raw_data) "
      "for i in g.initializer); "
      "print(json.dumps({\"ops\": collections.Counter(n.op_type for n in g.node), "
      "\"initializers\": len(g.initializer), "
      "\"duplicates\": sum(c - 1 for c in seen.values())}))' '" +
      model + "'");
  EXPECT_EQ(run.status, 0) << run.output;
  return run.status == 0 ? nlohmann::json::parse(run.output) : nlohmann::json::object();
}

struct OrtRun {
  std::map<std::string, at::Tensor> outputs;
  std::vector<double> times_ms;  // one per timed run
};

// What a run of ONNX Runtime may also do: optimise at another level than "all" ("basic",
// "extended") and write the graph it optimised to `optimized_model`.
struct OrtOptions {
  int threads = 1;
  int repeats = 1;
  std::string optimization = "all";
  std::string optimized_model;
};

// `model` run by ONNX Runtime in one session on each of `feeds` (inputs by name: float32 or
// int64 tensors) with `threads` intra-op threads and `repeats` timed runs per feed (after a
// warm-up when more than one).
inline std::vector<OrtRun> run_ort(const std::string& model,
                                   const std::vector<std::map<std::string, at::Tensor>>& feeds,
                                   const OrtOptions& options) {
  const std::string dir = make_temp_dir("sd_ort");
  nlohmann::json job{{"model", model},
                     {"threads", options.threads},
                     {"repeats", options.repeats},
                     {"optimization", options.optimization},
                     {"out_dir", dir},
                     {"feeds", nlohmann::json::array()}};
  if (!options.optimized_model.empty()) job["optimized_model"] = options.optimized_model;
  for (size_t k = 0; k < feeds.size(); ++k) {
    nlohmann::json specs = nlohmann::json::object();
    for (const auto& [name, tensor] : feeds[k]) {
      const at::Tensor t = tensor.contiguous();
      const std::string file = dir + "/in" + std::to_string(k) + "_" + name + ".bin";
      write_file_atomic(
          file, {static_cast<const char*>(t.data_ptr()), size_t(t.numel() * t.element_size())});
      specs[name] = {{"type", t.scalar_type() == at::kLong ? "int64" : "float32"},
                     {"dims", t.sizes().vec()},
                     {"file", file}};
    }
    job["feeds"].push_back(specs);
  }
  write_file_atomic(dir + "/job.json", job.dump());
  const ProgramRun run =
      run_command("node '" + ort_runner_dir() + "/run.js' '" + dir + "/job.json'");
  std::vector<OrtRun> out(feeds.size());
  EXPECT_EQ(run.status, 0) << run.output;
  if (run.status != 0) return out;
  const nlohmann::json result = nlohmann::json::parse(read_file(dir + "/result.json"));
  for (size_t k = 0; k < feeds.size(); ++k) {
    out[k].times_ms = result.at("times_ms").at(k).get<std::vector<double>>();
    for (const auto& [name, dims] : result.at("outputs").at(k).items()) {
      const std::string bytes = read_file(dir + "/" + std::to_string(k) + "." + name + ".bin");
      out[k].outputs[name] = at::from_blob(const_cast<char*>(bytes.data()),
                                           dims.get<std::vector<int64_t>>(), at::kFloat)
                                 .clone();
    }
  }
  std::filesystem::remove_all(dir);
  return out;
}

inline std::vector<OrtRun> run_ort(const std::string& model,
                                   const std::vector<std::map<std::string, at::Tensor>>& feeds,
                                   int threads = 1, int repeats = 1) {
  OrtOptions options;
  options.threads = threads;
  options.repeats = repeats;
  return run_ort(model, feeds, options);
}

inline OrtRun run_ort(const std::string& model, const std::map<std::string, at::Tensor>& inputs,
                      int threads = 1, int repeats = 1) {
  return run_ort(model, std::vector<std::map<std::string, at::Tensor>>{inputs}, threads,
                 repeats)[0];
}

inline double rel_l2(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

// Intersection over union of two boolean masks (1 when both are empty).
inline double mask_iou(const at::Tensor& a, const at::Tensor& b) {
  const double uni = (a | b).sum().item<double>();
  return uni == 0 ? 1.0 : (a & b).sum().item<double>() / uni;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace sd::testing
