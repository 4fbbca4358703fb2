// Block-wise 8-bit AdamW moments (optim.state_dtype: int8), in the manner of bitsandbytes'
// 8-bit optimizers: one absmax scale per block of QK_STATE8_BLOCK values, and a non-linear code
// for value / absmax so that small moments keep their relative precision. The code is a small
// floating-point format with 3 mantissa bits (values 0.. 1.875 before normalisation): a sign and
// 4 exponent bits for the first moment (E4M3), 5 exponent bits and no sign for the second
// (E5M3, whose values span the square of the first's range). A float code lets rounding work on
// the value's bits, without table searches: stochastic rounding adds random bits below the
// kept mantissa, as for BF16.
#include "qkernels.h"
#include "qk_internal.h"

// Format of a moment's codes: exponent bias, mantissa bits, largest code.
typedef struct { int bias, mant, maxcode; } qk_state8_format;

QK_INLINE qk_state8_format state8_format(int is_signed) {
    return is_signed ? (qk_state8_format){15, 3, 127} : (qk_state8_format){31, 3, 255};
}

#define STATE8_MAX 1.875f  // the largest code's value: 2^0 * (1 + 7/8)

static double code_value(qk_state8_format f, int code) {
    const int e = code >> f.mant, m = code & ((1 << f.mant) - 1);
    const double frac = (double)m / (double)(1 << f.mant);
    return e == 0 ? ldexp(frac, 1 - f.bias) : ldexp(1.0 + frac, e - f.bias);
}

void qk_state8_table(int is_signed, float out[256]) {
    const qk_state8_format f = state8_format(is_signed);
    for (int b = 0; b < 256; b++) {
        const int code = is_signed ? (b & 0x7F) : b;
        const float v = (float)code_value(f, code);
        out[b] = is_signed && (b & 0x80) ? -v : v;
    }
}

// A code's value from its bits (no table lookup, so it vectorises without gathers): normal
// codes are a float with the exponent rebased, subnormal ones a multiple of the smallest step.
QK_CLONES
void qk_state8_decode(float *out, const uint8_t *codes, const float *scales, int64_t n, int64_t first, int is_signed) {
    const qk_state8_format f = state8_format(is_signed);
    const uint32_t rebase = (uint32_t)(127 - f.bias);
    const float smallest = ldexpf(1.0f, 1 - f.bias - f.mant);
    int64_t i = 0;
    while (i < n) {
        const int64_t e0 = first + i;
        const int64_t end = (e0 / QK_STATE8_BLOCK + 1) * QK_STATE8_BLOCK - first;
        const int64_t stop = end < n ? end : n;
        const float step = *scales++ / STATE8_MAX;
        for (; i < stop; i++) {
            const uint32_t c = codes[i], mag = is_signed ? (c & 0x7F) : c;
            const uint32_t e = mag >> f.mant, m = mag & ((1u << f.mant) - 1);
            const uint32_t bits = ((e + rebase) << 23) | (m << (23 - f.mant));
            float normal;
            memcpy(&normal, &bits, 4);
            float v = e ? normal : (float)m * smallest;
            v = is_signed && (c & 0x80) ? -v : v;
            out[i] = v * step;
        }
    }
}

QK_INLINE uint32_t f32_bits(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

// Codes of len values (elements e0 ...) with one scale: inv = STATE8_MAX / absmax; stochastic
// with 16 bits of the hash of (k1, k2, element), else to nearest, halves up. Branch-free, so it
// vectorises (the hash too: 32-bit lanes; tensors hold fewer than 2^32 elements).
QK_CLONES
static void encode_block(uint8_t *out, const float *x, int64_t len, float inv, int stochastic, uint32_t k1, uint32_t k2,
                         int shift, uint32_t e0, int is_signed) {
    const qk_state8_format f = state8_format(is_signed);
    const int drop = 23 - f.mant;
    const uint32_t offset = (uint32_t)(127 - f.bias) << 23, mask = (1u << drop) - 1, half = 1u << (drop - 1);
    const float min_normal = ldexpf(1.0f, 1 - f.bias), sub_scale = ldexpf(1.0f, f.bias - 1 + f.mant);
    for (int64_t j = 0; j < len; j++) {
        const float v = x[j];
        // Negative second moments cannot occur; one would be stored as 0.
        float a = (is_signed ? fabsf(v) : fmaxf(v, 0.0f)) * inv;
        a = fminf(a, STATE8_MAX);
        // Normal codes: the float's bits with the exponent rebased, the dropped bits decide.
        const uint32_t b = f32_bits(a) - offset;
        const uint32_t dn = b & mask;
        // Subnormal codes: a multiple of the smallest step (exact power-of-two scaling).
        const float t = a * sub_scale, fl = floorf(t), fr = t - fl;
        int up_n, up_s;
        if (stochastic) {
            // 16 random bits r against the dropped bits: up when 16 r + 8 < dropped (20 bits),
            // or when (r + 1/2) / 2^16 < the fraction below a subnormal code.
            // One round of the hash (two multiplies) is plenty for rounding and costs half of two.
            const uint32_t r = (qk_mix32(((e0 + (uint32_t)j) ^ k1) + k2) >> shift) & 0xFFFFu;
            up_n = ((r << (drop - 16)) | (1u << (drop - 17))) < dn;
            up_s = ((float)r + 0.5f) * 0x1p-16f < fr;
        } else {
            up_n = dn >= half;
            up_s = fr >= 0.5f;
        }
        int code = a < min_normal ? (int)fl + up_s : (int)(b >> drop) + up_n;
        code = code > f.maxcode ? f.maxcode : code;
        out[j] = (uint8_t)(is_signed && v < 0 && code > 0 ? (code | 0x80) : code);
    }
}

// Sixteen running maxima (one vector), exact in any order.
QK_CLONES
static float absmax_of(const float *x, int64_t n) {
    float acc[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        for (int l = 0; l < 16; l++) {
            const float a = fabsf(x[j + l]);
            acc[l] = a > acc[l] ? a : acc[l];
        }
    }
    for (; j < n; j++) {
        const float a = fabsf(x[j]);
        acc[0] = a > acc[0] ? a : acc[0];
    }
    float m = 0;
    for (int l = 0; l < 16; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}

void qk_state8_encode(uint8_t *codes, float *scales, const float *in, int64_t n, int64_t first, int is_signed,
                      int stochastic, uint64_t seed, int shift) {
    const uint64_t k = qk_splitmix64(seed);
    int64_t i = 0;
    while (i < n) {
        const int64_t e = first + i;
        const int64_t end = (e / QK_STATE8_BLOCK + 1) * QK_STATE8_BLOCK - first;
        const int64_t stop = end < n ? end : n, len = stop - i;
        const float absmax = absmax_of(in + i, len);
        *scales++ = absmax;
        const float inv = absmax > 0 ? STATE8_MAX / absmax : 0.0f;
        encode_block(codes + i, in + i, len, inv, stochastic, (uint32_t)k, (uint32_t)(k >> 32), shift, (uint32_t)e, is_signed);
        i = stop;
    }
}
