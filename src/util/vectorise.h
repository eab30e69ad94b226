#pragma once

// SD_VECTORISED on a function with plain loops that GCC vectorises: on x86-64 it also builds
// an AVX2 copy of it, picked at run time on CPUs that have it (the baseline build stays SSE2).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SD_VECTORISED __attribute__((target_clones("avx2", "default")))
#else
#define SD_VECTORISED
#endif
