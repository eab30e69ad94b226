// SAM ViT's attention with decomposed relative positions: the fused kernel (scores, rel-pos
// bias, softmax and the product with v in one pass) against the module's ATen operations in
// double, on windows and on grids whose token counts are not multiples of 16.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/avx512_math.h"
#include "kernels/window_attention.h"
#include "models/autocast.h"
#include "models/encoder_testing.h"
#include "models/image_encoder_vit.h"

namespace sd::models {
namespace {

struct Grid {
  int64_t h, w, input_size;
};

// The module with random relative-position tables (SAM initialises them to zeros).
vit::Attention random_attention(int64_t dim, int64_t heads, int64_t input_size) {
  vit::Attention attn(dim, heads, /*qkv_bias=*/true, /*use_rel_pos=*/true, input_size);
  at::NoGradGuard no_grad;
  attn->rel_pos_h.copy_(at::randn_like(attn->rel_pos_h));
  attn->rel_pos_w.copy_(at::randn_like(attn->rel_pos_w));
  attn->eval();
  return attn;
}

struct Heads {
  int64_t dim, heads;
};

// The fused kernel where it runs, else the blocked one or ATen's operations: 14 x 14 windows
// (SAM's), a grid as large as the tables and one that resizes them, one whose tokens (342) fill no
// whole pass of keys or pair of tiles, and head widths of 32 (two, three heads), 64 (SAM's ViT-B/L)
// and 80 (ViT-H's, padded to 96 on AMX's tiles).
TEST(VitAttention, FusedRelPosIsTheDoublePrecisionAttention) {
  at::NoGradGuard no_grad;
  at::manual_seed(4);
  for (const Grid g : {Grid{14, 14, 14}, Grid{20, 24, 24}, Grid{32, 40, 16}, Grid{18, 19, 19}})
    for (const auto& [dim, heads] : {Heads{64, 2}, Heads{96, 3}, Heads{128, 2}, Heads{160, 2}}) {
      SCOPED_TRACE(std::to_string(g.h) + "x" + std::to_string(g.w) + ", dim " +
                   std::to_string(dim) + ", heads " + std::to_string(heads));
      vit::Attention attn = random_attention(dim, heads, g.input_size);
      const at::Tensor x = at::randn({2, g.h, g.w, dim});
      const at::Tensor all = attn->qkv(x).reshape({2, g.h * g.w, 3, heads, -1});
      // Without AVX-512 the fused kernel does not run: the blocked kernel (AVX2) or ATen's path is
      // then held to the same.
      EXPECT_EQ(kernels::fused_rel_pos_attention_applies(all.select(2, 0).transpose(1, 2),
                                                         all.select(2, 1).transpose(1, 2),
                                                         all.select(2, 2).transpose(1, 2)),
                kernels::avx512::cpu_has_avx512());
      const at::Tensor fp32 = attn->forward(x);
      at::Tensor bf16;
      {
        AutocastScope autocast(Amp::bf16, at::kCPU);
        bf16 = attn->forward(x);
      }
      attn->to(at::kDouble);
      const at::Tensor expected = attn->forward(x.to(at::kDouble));
      ASSERT_EQ(fp32.sizes(), expected.sizes());
      EXPECT_LE((fp32.to(at::kDouble) - expected).abs().max().item<double>(),
                1e-5 * expected.abs().max().item<double>());
      // q, k and v rounded to bf16 (2^-9 relative) and the output rounded once more.
      EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
      EXPECT_LE(encoder_testing::relative_error(bf16, expected), 0.01);
    }
}

}  // namespace
}  // namespace sd::models
