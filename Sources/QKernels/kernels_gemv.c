// Integer matrix-vector products for decoding one token: int8 activation codes times int8
// weight codes, summed exactly in int32. At one row per product the cost is reading the
// weights, so the int8 copy (a quarter of FP32's bytes) is what makes generation fast.
#include "qkernels.h"
#include "qk_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

// AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, so x is offset by 128 into
// u8 and 128 * sum(w row) is taken off afterwards (the row sums come precomputed).
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void gemv_vnni(int32_t *y, const int8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K,
                      const int32_t *rowSums) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        const int8_t *w0 = W + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        for (int64_t k = 0; k < K; k += 64) {
            const __mmask64 m = K - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (K - k)) - 1);
            const __m512i xv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + k), bias);
            const __m512i xu = _mm512_maskz_mov_epi8(m, xv);  // masked-off lanes contribute 0
            a0 = _mm512_dpbusd_epi32(a0, xu, _mm512_maskz_loadu_epi8(m, w0 + k));
            a1 = _mm512_dpbusd_epi32(a1, xu, _mm512_maskz_loadu_epi8(m, w1 + k));
            a2 = _mm512_dpbusd_epi32(a2, xu, _mm512_maskz_loadu_epi8(m, w2 + k));
            a3 = _mm512_dpbusd_epi32(a3, xu, _mm512_maskz_loadu_epi8(m, w3 + k));
        }
        y[r] = _mm512_reduce_add_epi32(a0) - 128 * rowSums[r];
        y[r + 1] = _mm512_reduce_add_epi32(a1) - 128 * rowSums[r + 1];
        y[r + 2] = _mm512_reduce_add_epi32(a2) - 128 * rowSums[r + 2];
        y[r + 3] = _mm512_reduce_add_epi32(a3) - 128 * rowSums[r + 3];
    }
    for (; r < rows; r++) {
        __m512i a = _mm512_setzero_si512();
        const int8_t *w = W + r * ldw;
        for (int64_t k = 0; k < K; k += 64) {
            const __mmask64 m = K - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (K - k)) - 1);
            const __m512i xu = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + k), bias));
            a = _mm512_dpbusd_epi32(a, xu, _mm512_maskz_loadu_epi8(m, w + k));
        }
        y[r] = _mm512_reduce_add_epi32(a) - 128 * rowSums[r];
    }
}
#endif

QK_CLONES
static void gemv_portable(int32_t *y, const int8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K) {
    for (int64_t r = 0; r < rows; r++) {
        const int8_t *w = W + r * ldw;
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) s += (int32_t)w[k] * (int32_t)x[k];
        y[r] = s;
    }
}

int qk_int8_gemv_uses_vnni(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

void qk_int8_gemv(int32_t *y, const int8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K,
                  const int32_t *rowSums) {
#if defined(__x86_64__)
    static int vnni = -1;  // decided once; a racing first call stores the same value
    int use = __atomic_load_n(&vnni, __ATOMIC_RELAXED);
    if (use < 0) {
        use = qk_int8_gemv_uses_vnni();
        __atomic_store_n(&vnni, use, __ATOMIC_RELAXED);
    }
    if (use && rowSums) {
        gemv_vnni(y, W, ldw, x, rows, K, rowSums);
        return;
    }
#endif
    gemv_portable(y, W, ldw, x, rows, K);
}

void qk_int8_row_sums(int32_t *sums, const int8_t *W, int64_t ldw, int64_t rows, int64_t K) {
    for (int64_t r = 0; r < rows; r++) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) s += W[r * ldw + k];
        sums[r] = s;
    }
}
