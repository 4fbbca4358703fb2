// oneDNN's integer GEMM, loaded at run time with dlopen so that qtrain builds and runs on a
// machine without the library (the int8 compute path then falls back to FP32). Only the
// BLAS-like entry point is used: C (s32) = A (s8) · Bᵀ (s8) for the forward product and
// A · B for the int8 dX backward, row-major.
#include "qkernels.h"
#include "qk_internal.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

typedef int (*gemm_s8s8s32_fn)(char transa, char transb, char offsetc, int64_t M, int64_t N, int64_t K, float alpha,
                               const int8_t *A, int64_t lda, int8_t ao, const int8_t *B, int64_t ldb, int8_t bo,
                               float beta, int32_t *C, int64_t ldc, const int32_t *co);
typedef void (*set_threads_fn)(int);

static gemm_s8s8s32_fn gemm_s8;
static set_threads_fn set_threads;
static int wanted_threads;
static const char *status = "not loaded";
static pthread_once_t once = PTHREAD_ONCE_INIT;

void *qk_dnnl_open(int cpu_ok, const char *cpu_missing, const char **why) {
    if (getenv("QTRAIN_DISABLE_ONEDNN")) {
        *why = "disabled by QTRAIN_DISABLE_ONEDNN";
        return NULL;
    }
    if (!cpu_ok) {
        *why = cpu_missing;
        return NULL;
    }
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) *why = "oneDNN (libdnnl.so.2) is not installed: apt-get install libdnnl2";
    return h;
}

static void load(void) {
    __builtin_cpu_init();
    void *h = qk_dnnl_open(__builtin_cpu_supports("avx512vnni"), "this CPU has no AVX-512 VNNI", &status);
    if (!h) return;
    gemm_s8 = (gemm_s8s8s32_fn)dlsym(h, "dnnl_gemm_s8s8s32");
    set_threads = (set_threads_fn)dlsym(h, "omp_set_num_threads");
    if (!gemm_s8) {
        status = "libdnnl.so.2 lacks dnnl_gemm_s8s8s32";
        return;
    }
    status = NULL;
    if (set_threads && wanted_threads > 0) set_threads(wanted_threads);
}

int qk_int8_gemm_available(void) {
    pthread_once(&once, load);
    return gemm_s8 != NULL && status == NULL;
}

const char *qk_int8_gemm_status(void) {
    pthread_once(&once, load);
    return status ? status : "oneDNN int8 GEMM (AVX-512 VNNI)";
}

void qk_int8_gemm_set_threads(int n) {
    // Applied now if the library is loaded, else when it loads: setting threads never loads it.
    wanted_threads = n;
    if (gemm_s8 && set_threads) set_threads(n);
}

int qk_int8_gemm_nt(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda, const int8_t *B, int64_t ldb,
                    int32_t *C, int64_t ldc) {
    if (!qk_int8_gemm_available()) return -1;
    const int32_t co = 0;
    return gemm_s8('N', 'T', 'F', M, N, K, 1.0f, A, lda, 0, B, ldb, 0, 0.0f, C, ldc, &co);
}

int qk_int8_gemm_nn(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda, const int8_t *B, int64_t ldb,
                    int32_t *C, int64_t ldc, int accumulate) {
    if (!qk_int8_gemm_available()) return -1;
    const int32_t co = 0;
    return gemm_s8('N', 'N', 'F', M, N, K, 1.0f, A, lda, 0, B, ldb, 0, accumulate ? 1.0f : 0.0f, C, ldc, &co);
}
