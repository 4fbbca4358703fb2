// Integer matrix-vector products for decoding one token: int8 activation codes times int8
// weight codes, summed exactly in int32. At one row per product the cost is reading the
// weights, so the int8 copy (a quarter of FP32's bytes) is what makes generation fast.
#include "qkernels.h"
#include "qk_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

// AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, so x is offset by 128 into
// u8 and 128 * sum(w row) is taken off afterwards (the row sums come precomputed). x is
// converted once (at most 4096 codes here; longer rows take the portable loop).
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void gemv_vnni(int32_t *y, const int8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K,
                      const int32_t *rowSums) {
    enum { MAXK = 4096 };
    __m512i xu[MAXK / 64];
    const int64_t full = K / 64, tail = K % 64;
    const __mmask64 m = tail ? (((__mmask64)1 << tail) - 1) : 0;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < full; b++) xu[b] = _mm512_xor_si512(_mm512_loadu_si512(x + 64 * b), bias);
    if (tail) xu[full] = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + 64 * full), bias));
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const int8_t *w0 = W + r * ldw, *w1 = w0 + ldw;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, c0 = a0, c1 = a0;
        int64_t b = 0;
        for (; b + 2 <= full; b += 2) {
            a0 = _mm512_dpbusd_epi32(a0, xu[b], _mm512_loadu_si512(w0 + 64 * b));
            a1 = _mm512_dpbusd_epi32(a1, xu[b], _mm512_loadu_si512(w1 + 64 * b));
            c0 = _mm512_dpbusd_epi32(c0, xu[b + 1], _mm512_loadu_si512(w0 + 64 * b + 64));
            c1 = _mm512_dpbusd_epi32(c1, xu[b + 1], _mm512_loadu_si512(w1 + 64 * b + 64));
        }
        for (; b < full; b++) {
            a0 = _mm512_dpbusd_epi32(a0, xu[b], _mm512_loadu_si512(w0 + 64 * b));
            a1 = _mm512_dpbusd_epi32(a1, xu[b], _mm512_loadu_si512(w1 + 64 * b));
        }
        if (tail) {
            a0 = _mm512_dpbusd_epi32(a0, xu[full], _mm512_maskz_loadu_epi8(m, w0 + 64 * full));
            a1 = _mm512_dpbusd_epi32(a1, xu[full], _mm512_maskz_loadu_epi8(m, w1 + 64 * full));
        }
        y[r] = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, c0)) - 128 * rowSums[r];
        y[r + 1] = _mm512_reduce_add_epi32(_mm512_add_epi32(a1, c1)) - 128 * rowSums[r + 1];
    }
    for (; r < rows; r++) {
        const int8_t *w0 = W + r * ldw;
        __m512i a0 = _mm512_setzero_si512();
        for (int64_t b = 0; b < full; b++) a0 = _mm512_dpbusd_epi32(a0, xu[b], _mm512_loadu_si512(w0 + 64 * b));
        if (tail) a0 = _mm512_dpbusd_epi32(a0, xu[full], _mm512_maskz_loadu_epi8(m, w0 + 64 * full));
        y[r] = _mm512_reduce_add_epi32(a0) - 128 * rowSums[r];
    }
}

// Ternary codes at 2 bits: in each 16-byte block of a row, byte j holds codes 16t + j of the
// block's 64 (t = 0..3) in bits 2t..2t+1, stored as code + 1. Broadcasting the 16 bytes to
// the four 128-bit lanes and shifting lane t right by 2t bits lines the codes up with 64
// consecutive x codes; vpdpbusd multiplies them (unsigned, 0..2) by x (signed), and
// sum(x) takes the +1 off.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void gemv_t2_vnni(int32_t *y, const uint8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t blocks,
                         int32_t xsum) {
    const __m512i shifts = _mm512_set_epi64(6, 6, 4, 4, 2, 2, 0, 0), three = _mm512_set1_epi8(3);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *w = W + r * ldw;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        int64_t b = 0;
        for (; b + 2 <= blocks; b += 2) {
            const __m512i v0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + 16 * b)));
            const __m512i v1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + 16 * b + 16)));
            a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(_mm512_srlv_epi64(v0, shifts), three),
                                     _mm512_loadu_si512(x + 64 * b));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srlv_epi64(v1, shifts), three),
                                     _mm512_loadu_si512(x + 64 * b + 64));
        }
        if (b < blocks) {
            const __m512i v0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + 16 * b)));
            a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(_mm512_srlv_epi64(v0, shifts), three),
                                     _mm512_loadu_si512(x + 64 * b));
        }
        y[r] = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1)) - xsum;
    }
}
#endif

QK_CLONES
void qk_ternary_pack2(uint8_t *out, const int8_t *codes, int64_t K) {
    const int64_t blocks = (K + 63) / 64, full = K / 64;
    // Whole blocks byte by byte (a loop over j that vectorises), then the last one code by code.
    for (int64_t b = 0; b < full; b++) {
        const int8_t *c = codes + 64 * b;
        for (int j = 0; j < 16; j++) {
            out[16 * b + j] = (uint8_t)((c[j] + 1) | (c[16 + j] + 1) << 2 | (c[32 + j] + 1) << 4 | (c[48 + j] + 1) << 6);
        }
    }
    memset(out + 16 * full, 0, (size_t)(16 * (blocks - full)));
    for (int64_t k = 64 * full; k < K; k++) {
        const int64_t b = k / 64, t = (k % 64) / 16, j = k % 16;
        out[16 * b + j] |= (uint8_t)((codes[k] + 1) << (2 * t));
    }
}

void qk_ternary_gemv2(int32_t *y, const uint8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K) {
    const int64_t blocks = (K + 63) / 64;
    int32_t xsum = 0;
    for (int64_t k = 0; k < K; k++) xsum += x[k];
#if defined(__x86_64__)
    if (qk_int8_gemv_uses_vnni()) {
        gemv_t2_vnni(y, W, ldw, x, rows, blocks, xsum);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *w = W + r * ldw;
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) {
            const int64_t b = k / 64, t = (k % 64) / 16, j = k % 16;
            s += (int32_t)((w[16 * b + j] >> (2 * t)) & 3) * (int32_t)x[k];
        }
        y[r] = s - xsum;
    }
}

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
    static int vnni = -1;  // decided once; a racing first call stores the same value
    int use = __atomic_load_n(&vnni, __ATOMIC_RELAXED);
    if (use < 0) {
        __builtin_cpu_init();
        use = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
        __atomic_store_n(&vnni, use, __ATOMIC_RELAXED);
    }
    return use;
#else
    return 0;
#endif
}

void qk_int8_gemv(int32_t *y, const int8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K,
                  const int32_t *rowSums) {
#if defined(__x86_64__)
    if (qk_int8_gemv_uses_vnni() && rowSums && K <= 4096) {
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
