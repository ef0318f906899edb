/* Contract: the part of CBLAS (and of OpenBLAS's thread control) that
 * autodiff/cpu/cpu_kernels.cpp calls, for GPU machines that have no OpenBLAS
 * (gpu/device/CMakeLists.txt uses it only then). The CPU backend there is the
 * GPU tests' oracle on small tapes, so plain loops are fast enough; results
 * agree with OpenBLAS to rounding, not to the bit. */
#ifndef REMAT_BLAS_FALLBACK_CBLAS_H
#define REMAT_BLAS_FALLBACK_CBLAS_H

#ifdef __cplusplus
extern "C" {
#endif

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transpose_a, enum CBLAS_TRANSPOSE transpose_b, int m,
                 int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
                 int ldc);
void cblas_dgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transpose_a, enum CBLAS_TRANSPOSE transpose_b, int m,
                 int n, int k, double alpha, const double* a, int lda, const double* b, int ldb, double beta, double* c,
                 int ldc);
void openblas_set_num_threads(int threads);

#ifdef __cplusplus
}
#endif

#endif
