#include "kernels/onednn_linear.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/record_function.h>

#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>

#if SAMDISTILL_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace sd::kernels {

#if SAMDISTILL_WITH_ONEDNN

namespace {

using dnnl::memory;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::data_type dnnl_type(at::ScalarType type) {
  return type == at::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// oneDNN 3 dropped the operation descriptors and the post-ops' scale argument.
dnnl::matmul::primitive_desc matmul_desc(const memory::desc& src, const memory::desc& weights,
                                         const memory::desc& bias, const memory::desc& dst,
                                         const dnnl::primitive_attr& attr) {
#if DNNL_VERSION_MAJOR >= 3
  return {cpu_engine(), src, weights, bias, dst, attr};
#else
  return {dnnl::matmul::desc(src, weights, bias, dst), attr, cpu_engine()};
#endif
}

void append_activation(dnnl::post_ops& ops, Epilogue act) {
  if (act == Epilogue::none) return;
  const auto algorithm =
      act == Epilogue::gelu ? dnnl::algorithm::eltwise_gelu_erf : dnnl::algorithm::eltwise_relu;
#if DNNL_VERSION_MAJOR >= 3
  ops.append_eltwise(algorithm, 0.0f, 0.0f);
#else
  ops.append_eltwise(1.0f, algorithm, 0.0f, 0.0f);
#endif
}

// What a product's primitive depends on besides the weights: rows, type, epilogue.
using Key = std::tuple<int64_t, at::ScalarType, Epilogue, bool, bool>;

struct Product {
  dnnl::matmul primitive;
  memory::desc src, weights, bias, dst, residual;
  memory packed_weights;  // bf16: the weights converted and laid out once; fp32: read in place
};

}  // namespace

struct OnednnLinear::State {
  std::mutex mutex;
  // The weights the products were made for (held, so that no other tensor takes their memory)
  // and their version then (in-place updates bump it).
  at::Tensor weight;
  int64_t weight_version = -1;
  std::map<Key, std::shared_ptr<const Product>> products;
  std::map<Key, bool> unsupported;
};

OnednnLinear::OnednnLinear() : state_(std::make_shared<State>()) {}

bool OnednnLinear::built() { return true; }

at::Tensor OnednnLinear::operator()(const at::Tensor& x, const at::Tensor& weight,
                                    const at::Tensor& bias, at::ScalarType type, Epilogue act,
                                    const at::Tensor& residual) {
  const bool autograd =
      at::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  const int64_t K = weight.size(1), N = weight.size(0), M = K > 0 ? x.numel() / K : 0;
  const bool typed =
      (type == at::kFloat || type == at::kBFloat16) && weight.scalar_type() == at::kFloat &&
      (!bias.defined() || (bias.scalar_type() == at::kFloat && bias.is_contiguous()));
  const bool added = residual.defined();
  const bool residual_fits =
      !added || (residual.scalar_type() == at::kFloat && residual.is_contiguous() &&
                 residual.numel() == M * N && residual.device().is_cpu() &&
                 !(at::GradMode::is_enabled() && residual.requires_grad()));
  if (autograd || !typed || !residual_fits || M == 0 || !x.device().is_cpu() ||
      !weight.device().is_cpu() || !weight.is_contiguous() || x.size(-1) != K)
    return {};

  // Seen by profilers and bench's FLOP count as one operation of inputs (x, weight).
  const std::vector<c10::IValue> inputs{x, weight};
  RECORD_FUNCTION("sd::linear", inputs);
  const Key key{M, type, act, bias.defined(), added};
  std::unique_lock<std::mutex> lock(state_->mutex);
  if (!state_->weight.is_same(weight) || state_->weight_version != weight._version()) {
    state_->products.clear();
    state_->weight = weight, state_->weight_version = weight._version();
  }
  if (state_->unsupported.count(key)) return {};
  auto found = state_->products.find(key);
  if (found == state_->products.end()) {
    // Decoders see a new row count with each number of prompts: a few products are kept.
    if (state_->products.size() >= 8) state_->products.clear();
    Product p;
    const memory::data_type dt = dnnl_type(type);
    p.src = memory::desc({M, K}, dt, memory::format_tag::ab);
    p.dst = memory::desc({M, N}, added ? memory::data_type::f32 : dt, memory::format_tag::ab);
    p.bias = bias.defined() ? memory::desc({1, N}, memory::data_type::f32, memory::format_tag::ab)
                            : memory::desc();
    // weight [N, K] row-major is the K x N operand in column-major ("ba") order.
    const memory::desc plain({K, N}, dt, memory::format_tag::ba);
    dnnl::post_ops ops;
    append_activation(ops, act);
    p.residual = memory::desc({M, N}, memory::data_type::f32, memory::format_tag::ab);
    if (added) ops.append_binary(dnnl::algorithm::binary_add, p.residual);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    try {
      const memory::desc any({K, N}, dt, memory::format_tag::any);
      const auto pd = matmul_desc(p.src, type == at::kBFloat16 ? any : plain, p.bias, p.dst, attr);
      p.primitive = dnnl::matmul(pd);
      p.weights = pd.weights_desc();
      if (type == at::kBFloat16) {
        const at::Tensor converted = weight.to(at::kBFloat16);
        memory from(plain, cpu_engine(), converted.data_ptr());
        p.packed_weights = memory(p.weights, cpu_engine());
        dnnl::stream stream(cpu_engine());
        dnnl::reorder(from, p.packed_weights).execute(stream, from, p.packed_weights);
        stream.wait();
      }
    } catch (const dnnl::error&) {
      state_->unsupported[key] = true;  // e.g. bf16 on a CPU without AVX-512
      return {};
    }
    found = state_->products.emplace(key, std::make_shared<const Product>(std::move(p))).first;
  }
  const std::shared_ptr<const Product> product = found->second;  // kept if another call clears
  lock.unlock();
  const Product& p = *product;

  const at::Tensor src = x.to(type).reshape({M, K}).contiguous();
  at::Tensor out = at::empty({M, N}, x.options().dtype(added ? at::kFloat : type));
  memory weights = type == at::kBFloat16
                       ? p.packed_weights
                       : memory(p.weights, cpu_engine(), const_cast<void*>(weight.data_ptr()));
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(p.src, cpu_engine(), const_cast<void*>(src.data_ptr()))},
      {DNNL_ARG_WEIGHTS, weights},
      {DNNL_ARG_DST, memory(p.dst, cpu_engine(), out.data_ptr())}};
  if (bias.defined())
    args.emplace(DNNL_ARG_BIAS, memory(p.bias, cpu_engine(), const_cast<void*>(bias.data_ptr())));
  if (added)
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(act == Epilogue::none ? 0 : 1) | DNNL_ARG_SRC_1,
                 memory(p.residual, cpu_engine(), const_cast<void*>(residual.data_ptr())));
  dnnl::stream stream(cpu_engine());
  p.primitive.execute(stream, args);
  stream.wait();
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  return out.view(sizes);
}

#else

struct OnednnLinear::State {};

OnednnLinear::OnednnLinear() = default;

bool OnednnLinear::built() { return false; }

at::Tensor OnednnLinear::operator()(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    at::ScalarType, Epilogue, const at::Tensor&) {
  return {};
}

#endif

}  // namespace sd::kernels
