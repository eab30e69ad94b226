#include "kernels/transpose.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>

#include "kernels/avx2.h"

namespace sd::kernels {
namespace {

// Rows and columns of a tile: its 8 x 8 blocks write 16 rows of the output 512 bytes at a time,
// which stays clear of the cache-set conflicts of writing 8 rows far apart 32 bytes at a time.
constexpr int64_t kTileRows = 128, kTileColumns = 16;

// out (8 rows, ldo apart) = the 8 x 8 block of in (8 rows, ldi apart), transposed.
SD_AVX2 void transpose8x8(const float* in, int64_t ldi, float* out, int64_t ldo) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + i * ldi);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(out + i * ldo, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(out + (i + 4) * ldo, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// out (S x R) = in (R x S) transposed, rows [r0, r1) x columns [s0, s1) of in.
SD_AVX2 void transpose_tile(const float* in, float* out, int64_t rows, int64_t columns, int64_t r0,
                            int64_t r1, int64_t s0, int64_t s1) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    int64_t s = s0;
    for (; s + 8 <= s1; s += 8)
      transpose8x8(in + r * columns + s, columns, out + s * rows + r, rows);
    for (; s < s1; ++s)
      for (int64_t i = r; i < r + 8; ++i) out[s * rows + i] = in[i * columns + s];
  }
  for (; r < r1; ++r)
    for (int64_t s = s0; s < s1; ++s) out[s * rows + r] = in[r * columns + s];
}

}  // namespace

at::Tensor transposed_matrices(const at::Tensor& t) {
  const int64_t batch = t.size(0), rows = t.size(1), columns = t.size(2);
  at::Tensor out = at::empty({batch, columns, rows}, t.options());
  if (!(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
        cpu_has_avx2_fma())) {
    for (int64_t b = 0; b < batch; ++b) out[b].copy_(t[b].t());
    return out;
  }
  const std::vector<c10::IValue> inputs{t};  // the guard refers to them to its end
  RECORD_FUNCTION("sd::transposed_matrices", inputs);
  const float* in = t.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t row_tiles = (rows + kTileRows - 1) / kTileRows;
  const int64_t column_tiles = (columns + kTileColumns - 1) / kTileColumns;
  const int64_t per_matrix = row_tiles * column_tiles;
  at::parallel_for(0, batch * per_matrix, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / per_matrix, tile = i % per_matrix;
      const int64_t r0 = tile / column_tiles * kTileRows, s0 = tile % column_tiles * kTileColumns;
      transpose_tile(in + b * rows * columns, o + b * rows * columns, rows, columns, r0,
                     std::min(rows, r0 + kTileRows), s0, std::min(columns, s0 + kTileColumns));
    }
  });
  return out;
}

}  // namespace sd::kernels
