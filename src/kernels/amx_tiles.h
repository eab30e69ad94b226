#pragma once
// bf16 matrix products on AMX's tiles (Sapphire Rapids and later) for the attention kernels:
// eight tile registers of 16 rows x 64 bytes, each TDPBF16PS adding a 16 x 32 bf16 by 32 x 16
// bf16 product to a 16 x 16 fp32 tile. Every product here is 32 rows by 32 columns at a time
// (four result tiles, two of A, two of B). B operands are packed as the instruction reads them
// (pairs of rows interleaved: "VNNI"), in blocks of one tile (1 KB).
#include <c10/util/BFloat16.h>

#include <cstdint>

namespace sd::kernels::amx {

using bf16 = c10::BFloat16;

constexpr int64_t kTile = 16;   // rows of a tile; fp32 columns of a result tile
constexpr int64_t kDepth = 32;  // bf16 values of a tile row: the reduction of one product

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Whether this CPU has AMX's bf16 tiles and the kernel lets this process use them (Linux asks
// each process to request the tile state once; done here, at the first call).
bool available();

// Sets every tile to 16 x 64 bytes on this thread; needed once per thread before the products
// (another library's tile kernels may have configured them otherwise in between).
void configure_thread();

// kᵀ for scores_on_tiles: the n x d rows `k` (`stride` apart) as blocks of 16 keys by 32
// channels, block (key block j, channel chunk c) at tile j * chunks + c, chunks = d_p / 32;
// keys past n and channels past d zero. `out` holds round_up(n, 32) * d_p values,
// d_p = round_up(d, 32).
void pack_keys(const bf16* k, int64_t stride, int64_t n, int64_t d, bf16* out);

// v for weigh_on_tiles: the n x d rows `v` (`stride` apart) as blocks of 32 keys by 16
// channels, block (key chunk kc, channel block cb) at tile kc * (d_p / 16) + cb; keys past n
// and channels past d zero. `out` holds round_up(n, 32) * d_p values.
void pack_values(const bf16* v, int64_t stride, int64_t n, int64_t d, bf16* out);

// s (32 x 32 * key_pairs fp32, rows s_stride floats apart) = q kᵀ for 32 query rows `q`
// (d_p bf16 each, contiguous) and the packed keys from key block first_block (even), 32 keys
// a pair.
void scores_on_tiles(const bf16* q, int64_t d_p, const bf16* packed_keys, int64_t first_block,
                     int64_t key_pairs, float* s, int64_t s_stride);

// o (32 x d_p fp32, rows o_stride floats apart) = p v for 32 rows of weights `p` (bf16, rows
// p_stride values apart; 32 * chunks of them, from key chunk first_chunk) and the packed values.
void weigh_on_tiles(const bf16* p, int64_t p_stride, const bf16* packed_values, int64_t d_p,
                    int64_t first_chunk, int64_t chunks, float* o, int64_t o_stride);

}  // namespace sd::kernels::amx
