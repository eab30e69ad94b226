#pragma once
// The BLAS LibTorch itself calls (Fortran interface; Debian: libblas.so.3, OpenBLAS), where the
// build found it (SAMDISTILL_WITH_BLAS).
#ifdef SAMDISTILL_WITH_BLAS
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c, const int* ldc);

namespace sd::kernels::blas {

// c = alpha · a · bᵀ + beta · c for row-major a (m x k, rows lda apart), b (n x k, ldb) and
// c (m x n, ldc). In BLAS's column-major terms: cᵀ = b · aᵀ.
inline void gemm_abt(int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                     int ldb, float beta, float* c, int ldc) {
  sgemm_("T", "N", &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

// c = a · b for row-major a (m x k, lda), b (k x n, ldb) and c (m x n, ldc): cᵀ = bᵀ · aᵀ.
inline void gemm_ab(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
                    int ldc) {
  const float one = 1.0f, zero = 0.0f;
  sgemm_("N", "N", &n, &m, &k, &one, b, &ldb, a, &lda, &zero, c, &ldc);
}

}  // namespace sd::kernels::blas
#endif
