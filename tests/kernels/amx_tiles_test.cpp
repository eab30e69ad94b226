// AMX's bf16 products (kernels/amx_tiles.h) against double-precision products of the same bf16
// values: the tiles accumulate in fp32, so only fp32's rounding of the sums may differ.
#include "kernels/amx_tiles.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

namespace sd::kernels::amx {
namespace {

// A tensor's bf16 values where they lie.
const bf16* rows_of(const at::Tensor& t) { return t.data_ptr<bf16>(); }

void expect_close(const at::Tensor& got, const at::Tensor& want) {
  const double scale = want.abs().max().item<double>();
  EXPECT_LE((got.to(at::kDouble) - want).abs().max().item<double>(), 1e-5 * scale);
}

// Keys and values of n x d, strided as the qkv projection leaves them (rows 3 x d apart), and
// 32 query rows; n and d that fill no whole pair of tiles are zero-padded by the packing.
TEST(AmxTiles, ScoresAndWeightedValuesAreTheProductsOfTheBf16Values) {
  if (!available()) GTEST_SKIP() << "this CPU (or its kernel) gives no AMX bf16 tiles";
  at::manual_seed(0);
  configure_thread();
  for (const auto& [n, d] : {std::pair<int64_t, int64_t>{64, 32}, {196, 64}, {100, 80}}) {
    SCOPED_TRACE("n " + std::to_string(n) + ", d " + std::to_string(d));
    const int64_t d_p = round_up(d, kDepth), n_p = round_up(n, kDepth);
    const at::Tensor qkv = at::randn({n, 3, d}).to(at::kBFloat16);
    const at::Tensor k = qkv.select(1, 1), v = qkv.select(1, 2);
    const at::Tensor q = at::zeros({32, d_p}, at::kBFloat16);
    q.narrow(1, 0, d).copy_(at::randn({32, d}));
    std::vector<bf16> keys(n_p * d_p), values(n_p * d_p);
    pack_keys(rows_of(k), k.stride(0), n, d, keys.data());
    pack_values(rows_of(v), v.stride(0), n, d, values.data());

    at::Tensor s = at::full({32, n_p}, -1.0f);
    scores_on_tiles(rows_of(q), d_p, keys.data(), 0, n_p / kDepth, s.data_ptr<float>(), n_p);
    const at::Tensor qd = q.narrow(1, 0, d).to(at::kDouble);
    expect_close(s.narrow(1, 0, n), qd.matmul(k.to(at::kDouble).t()));
    // Keys past n are zero.
    EXPECT_EQ(s.narrow(1, n, n_p - n).abs().sum().item<float>(), 0.0f);

    // The second product from a later key chunk on, as a pass of the online softmax reads it.
    const at::Tensor p = at::zeros({32, n_p}, at::kBFloat16);
    p.narrow(1, 0, n).copy_(at::rand({32, n}));
    at::Tensor o = at::full({32, d_p}, -1.0f);
    weigh_on_tiles(rows_of(p), n_p, values.data(), d_p, 0, n_p / kDepth, o.data_ptr<float>(), d_p);
    expect_close(o.narrow(1, 0, d), p.narrow(1, 0, n).to(at::kDouble).matmul(v.to(at::kDouble)));
    const int64_t later = kDepth;
    weigh_on_tiles(rows_of(p) + later, n_p, values.data(), d_p, 1, (n_p - later) / kDepth,
                   o.data_ptr<float>(), d_p);
    expect_close(o.narrow(1, 0, d), p.narrow(1, later, n - later)
                                        .to(at::kDouble)
                                        .matmul(v.narrow(0, later, n - later).to(at::kDouble)));
  }
}

}  // namespace
}  // namespace sd::kernels::amx
