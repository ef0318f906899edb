// Contract: row-major (and column-major) gemm in plain loops, for GPU machines
// without OpenBLAS (see cblas.h beside it). Each row of C is one item of an
// OpenMP loop and sums its products in index order, so results do not depend on
// the thread count. openblas_set_num_threads does nothing: there is no pool.
#include "cblas.h"

#include <vector>

namespace {

template <class T>
void gemm_row_major(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta,
                    T* c, int ldc) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    std::vector<T> row(static_cast<std::size_t>(n), T(0));
    for (int p = 0; p < k; ++p) {
      const T aip = ta ? a[static_cast<long>(p) * lda + i] : a[static_cast<long>(i) * lda + p];
      if (tb)
        for (int j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += aip * b[static_cast<long>(j) * ldb + p];
      else
        for (int j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += aip * b[static_cast<long>(p) * ldb + j];
    }
    T* ci = c + static_cast<long>(i) * ldc;
    for (int j = 0; j < n; ++j)
      ci[j] = beta == T(0) ? alpha * row[static_cast<std::size_t>(j)] : alpha * row[static_cast<std::size_t>(j)] + beta * ci[j];
  }
}

template <class T>
void gemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, T alpha, const T* a, int lda,
          const T* b, int ldb, T beta, T* c, int ldc) {
  const bool transpose_a = ta != CblasNoTrans, transpose_b = tb != CblasNoTrans;
  if (order == CblasRowMajor)
    gemm_row_major(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else  // column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T
    gemm_row_major(transpose_b, transpose_a, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
}

}  // namespace

extern "C" {

void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha,
                 const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void openblas_set_num_threads(int) {}

}  // extern "C"
