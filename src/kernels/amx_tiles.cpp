#include "kernels/amx_tiles.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "util/cpu.h"

#define SD_AMX __attribute__((target("amx-tile,amx-bf16")))

namespace sd::kernels::amx {
namespace {

constexpr int64_t kBlock = kTile * kDepth;  // bf16 values of a packed tile

// The 64-byte operand of LDTILECFG, palette 1.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// Linux keeps AMX's tile state off until a process asks (arch_prctl, since 5.16).
bool tile_state_granted() {
  constexpr int kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM
  constexpr int kTileData = 18;               // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}

}  // namespace

bool available() {
  static const bool ok = cpu_has("amx_tile") && cpu_has("amx_bf16") && tile_state_granted();
  return ok;
}

SD_AMX void configure_thread() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.bytes_per_row[t] = 64, config.rows[t] = kTile;
  // GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes, which then drops the stores
  // of the rest: the whole 64 bytes as the operand.
  __asm__ volatile("ldtilecfg %0" : : "m"(config) : "memory");
}

// A tile row holds 16 pairs of bf16: one 32-bit word per column.
using Pair = uint32_t;

void pack_keys(const bf16* k, int64_t stride, int64_t n, int64_t d, bf16* out) {
  const int64_t d_p = round_up(d, kDepth), n_p = round_up(n, 2 * kTile), chunks = d_p / kDepth;
  std::memset(static_cast<void*>(out), 0, sizeof(bf16) * n_p * d_p);
  // Word (pair of channels) c2 of key `key` goes to row c2 % 16, column key % 16 of its tile.
  for (int64_t key = 0; key < n; ++key) {
    const bf16* row = k + key * stride;
    const int64_t j = key / kTile, col = key % kTile;
    for (int64_t c2 = 0; c2 < d / 2; ++c2) {
      Pair pair;
      std::memcpy(&pair, row + 2 * c2, sizeof(pair));
      std::memcpy(out + (j * chunks + c2 / kTile) * kBlock + (c2 % kTile) * kDepth + col * 2, &pair,
                  sizeof(pair));
    }
  }
}

void pack_values(const bf16* v, int64_t stride, int64_t n, int64_t d, bf16* out) {
  const int64_t d_p = round_up(d, kDepth), n_p = round_up(n, kDepth), blocks = d_p / kTile;
  std::memset(static_cast<void*>(out), 0, sizeof(bf16) * n_p * d_p);
  // Keys 2i and 2i + 1 interleave into row i % 16 of their chunk's tiles.
  for (int64_t key = 0; key < n; key += 2) {
    const bf16* even = v + key * stride;
    const bf16* odd = key + 1 < n ? even + stride : nullptr;
    bf16* tile_row = out + (key / kDepth) * blocks * kBlock + (key % kDepth / 2) * kDepth;
    for (int64_t c = 0; c < d; ++c) {
      bf16* pair = tile_row + (c / kTile) * kBlock + (c % kTile) * 2;
      pair[0] = even[c];
      pair[1] = odd ? odd[c] : bf16(0);
    }
  }
}

SD_AMX void scores_on_tiles(const bf16* q, int64_t d_p, const bf16* packed_keys,
                            int64_t first_block, int64_t key_pairs, float* s, int64_t s_stride) {
  const int64_t chunks = d_p / kDepth, q_bytes = d_p * 2, s_bytes = s_stride * 4;
  for (int64_t pair = 0; pair < key_pairs; ++pair) {
    const bf16* left = packed_keys + (first_block + 2 * pair) * chunks * kBlock;
    const bf16* right = left + chunks * kBlock;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t c = 0; c < chunks; ++c) {
      _tile_loadd(4, q + c * kDepth, q_bytes);
      _tile_loadd(5, q + kTile * d_p + c * kDepth, q_bytes);
      _tile_loadd(6, left + c * kBlock, 64);
      _tile_loadd(7, right + c * kBlock, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    float* out = s + pair * 2 * kTile;
    _tile_stored(0, out, s_bytes);
    _tile_stored(1, out + kTile, s_bytes);
    _tile_stored(2, out + kTile * s_stride, s_bytes);
    _tile_stored(3, out + kTile * s_stride + kTile, s_bytes);
  }
}

SD_AMX void weigh_on_tiles(const bf16* p, int64_t p_stride, const bf16* packed_values, int64_t d_p,
                           int64_t first_chunk, int64_t chunks, float* o, int64_t o_stride) {
  const int64_t blocks = d_p / kTile, p_bytes = p_stride * 2, o_bytes = o_stride * 4;
  for (int64_t cb = 0; cb < blocks; cb += 2) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t kc = 0; kc < chunks; ++kc) {
      const bf16* left = packed_values + ((first_chunk + kc) * blocks + cb) * kBlock;
      _tile_loadd(4, p + kc * kDepth, p_bytes);
      _tile_loadd(5, p + kTile * p_stride + kc * kDepth, p_bytes);
      _tile_loadd(6, left, 64);
      _tile_loadd(7, left + kBlock, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    float* out = o + cb * kTile;
    _tile_stored(0, out, o_bytes);
    _tile_stored(1, out + kTile, o_bytes);
    _tile_stored(2, out + kTile * o_stride, o_bytes);
    _tile_stored(3, out + kTile * o_stride + kTile, o_bytes);
  }
}

}  // namespace sd::kernels::amx
