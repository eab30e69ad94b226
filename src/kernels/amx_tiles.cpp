#include "kernels/amx_tiles.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

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

// Every CPU with AMX has these.
#define SD_AVX512BW __attribute__((target("avx512f,avx512bw,avx512vl")))

// The first `count` of 16 lanes (none for count <= 0).
inline __mmask16 first_lanes(int64_t count) {
  return __mmask16((1u << std::clamp<int64_t>(count, 0, kTile)) - 1);
}

// The 16 x 16 words r (row i: r[i]) transposed in place: r[j] becomes column j.
// (The unpacks and shuffles are the zero-masked forms: GCC 12's plain ones start from an undefined
// register that -Wuninitialized reports.)
SD_AVX512BW void transpose_words(__m512i r[16]) {
  const __mmask16 all = 0xFFFF;
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved by words, within 128 bits
    t[i] = _mm512_maskz_unpacklo_epi32(all, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_epi32(all, r[i], r[i + 1]);
  }
  // u[4g + m]'s 128-bit lane L: column 4L + m of rows 4g .. 4g + 3.
  for (int g = 0; g < 16; g += 4) {
    u[g] = _mm512_maskz_unpacklo_epi64(__mmask8(all), t[g], t[g + 2]);
    u[g + 1] = _mm512_maskz_unpackhi_epi64(__mmask8(all), t[g], t[g + 2]);
    u[g + 2] = _mm512_maskz_unpacklo_epi64(__mmask8(all), t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_maskz_unpackhi_epi64(__mmask8(all), t[g + 1], t[g + 3]);
  }
  // Column 4L + m gathers lane L of u[m], u[4 + m], u[8 + m], u[12 + m].
  for (int m = 0; m < 4; ++m) {
    const __m512i even_lo = _mm512_maskz_shuffle_i32x4(all, u[m], u[4 + m], 0x88);  // lanes 0, 2
    const __m512i odd_lo = _mm512_maskz_shuffle_i32x4(all, u[m], u[4 + m], 0xDD);   // lanes 1, 3
    const __m512i even_hi = _mm512_maskz_shuffle_i32x4(all, u[8 + m], u[12 + m], 0x88);
    const __m512i odd_hi = _mm512_maskz_shuffle_i32x4(all, u[8 + m], u[12 + m], 0xDD);
    r[m] = _mm512_maskz_shuffle_i32x4(all, even_lo, even_hi, 0x88);
    r[8 + m] = _mm512_maskz_shuffle_i32x4(all, even_lo, even_hi, 0xDD);
    r[4 + m] = _mm512_maskz_shuffle_i32x4(all, odd_lo, odd_hi, 0x88);
    r[12 + m] = _mm512_maskz_shuffle_i32x4(all, odd_lo, odd_hi, 0xDD);
  }
}

// Tile (j, c) is the transpose of keys 16j .. 16j + 15 by their channel pairs 16c .. 16c + 15
// (a tile row holds 16 pairs of bf16: one 32-bit word per column).
SD_AVX512BW void pack_keys(const bf16* k, int64_t stride, int64_t n, int64_t d, bf16* out) {
  const int64_t d_p = round_up(d, kDepth), n_p = round_up(n, 2 * kTile), chunks = d_p / kDepth;
  const int64_t pairs = d / 2;  // every tile is written whole: no zeroing first
  for (int64_t j = 0; j < n_p / kTile; ++j)
    for (int64_t c = 0; c < chunks; ++c) {
      const __mmask16 words = first_lanes(pairs - c * kTile);
      __m512i rows[16];
      for (int64_t i = 0; i < kTile; ++i) {
        const int64_t key = j * kTile + i;
        rows[i] = key < n ? _mm512_maskz_loadu_epi32(words, k + key * stride + c * kDepth)
                          : _mm512_setzero_si512();
      }
      transpose_words(rows);
      bf16* tile = out + (j * chunks + c) * kBlock;
      for (int64_t i = 0; i < kTile; ++i) _mm512_storeu_si512(tile + i * kDepth, rows[i]);
    }
}

// Row i of tile (kc, cb): channels 16cb .. 16cb + 15 of keys 32kc + 2i and 32kc + 2i + 1,
// interleaved.
SD_AVX512BW void pack_values(const bf16* v, int64_t stride, int64_t n, int64_t d, bf16* out) {
  const int64_t d_p = round_up(d, kDepth), n_p = round_up(n, kDepth), blocks = d_p / kTile;
  // Value c of the even key, then value c of the odd one (from the second operand: 32 + c).
  alignas(64) static constexpr uint16_t kInterleave[32] = {
      0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
      8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  // Key `key`'s channels of block cb (zeros past n and past d).
  const auto channels = [&](int64_t key, int64_t cb) SD_AVX512BW {
    return key < n ? _mm512_maskz_loadu_epi16(first_lanes(d - cb * kTile),
                                              v + key * stride + cb * kTile)
                   : _mm512_setzero_si512();
  };
  // Every tile row is written, the padding's as zeros: no zeroing first.
  for (int64_t key = 0; key < n_p; key += 2) {
    bf16* tile_row = out + (key / kDepth) * blocks * kBlock + (key % kDepth / 2) * kDepth;
    for (int64_t cb = 0; cb < blocks; ++cb)
      _mm512_storeu_si512(
          tile_row + cb * kBlock,
          _mm512_permutex2var_epi16(channels(key, cb), interleave, channels(key + 1, cb)));
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
