// Operands of the BF16 backward GEMMs: the incoming gradient rounded to BF16 (the only
// rounding of that path), and integer codes, which BF16 holds exactly.
#include "qkernels.h"
#include "qk_internal.h"

QK_CLONES
void qk_round_bf16(uint16_t *out, int64_t ldo, const float *in, int64_t ldi, int64_t rows, int64_t cols,
                   const float *rowScale, float scale, uint64_t seed, uint64_t first, int64_t stride,
                   int stochastic) {
    const uint64_t k = qk_splitmix64(seed);
    const uint32_t k1 = (uint32_t)k, k2 = (uint32_t)(k >> 32);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ldi;
        uint16_t *o = out + r * ldo;
        const float rs = (rowScale ? rowScale[r] : 1.0f) * scale;
        const uint64_t e0 = first + (uint64_t)r * (uint64_t)stride;
        for (int64_t c = 0; c < cols; c++) {
            const float v = x[c] * rs;
            uint32_t bits;
            memcpy(&bits, &v, 4);
            uint32_t add;
            if (stochastic) {
                const uint64_t e = e0 + (uint64_t)c;
                add = qk_mix32(qk_mix32((uint32_t)e ^ k1) ^ k2 ^ (uint32_t)(e >> 32) * 0x9e3779b9u) >> 16;
            } else {
                add = 0x7fffu + ((bits >> 16) & 1u);  // to nearest, ties to even
            }
            const int nan = (bits & 0x7fffffffu) > 0x7f800000u;
            o[c] = nan ? (uint16_t)((bits >> 16) | 0x40u) : (uint16_t)((bits + add) >> 16);
        }
    }
}

QK_CLONES
void qk_act_codes_bf16(const float *x, int64_t ld, int64_t rows, int64_t C, uint16_t *out, int64_t ldo,
                       float *steps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        uint16_t *o = out + r * ldo;
        float amax = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            const float a = fabsf(xr[c]);
            amax = a > amax ? a : amax;
        }
        const float step = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        steps[r] = step;
        for (int64_t c = 0; c < C; c++) {
            const float q = rintf(xr[c] * inv);
            uint32_t bits;
            memcpy(&bits, &q, 4);
            o[c] = (uint16_t)(bits >> 16);  // an integer of magnitude <= 128: exact
        }
    }
}

QK_CLONES
void qk_i8_to_bf16(uint16_t *out, const int8_t *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float f = (float)in[i];
        uint32_t bits;
        memcpy(&bits, &f, 4);
        out[i] = (uint16_t)(bits >> 16);
    }
}

// MARK: - BF16 gradients (optim.grad_dtype: bf16)

QK_CLONES
void qk_bf16_widen_add(float *x, const uint16_t *acc, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += qk_bf16_to_f32(acc[i]);
}

QK_CLONES
void qk_bf16_sum_into(uint16_t *inout, const uint16_t *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) inout[i] = qk_f32_to_bf16(qk_bf16_to_f32(inout[i]) + qk_bf16_to_f32(in[i]));
}

QK_CLONES
static double sum_sq_bf16_block(const uint16_t *x, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) {
            const float v = qk_bf16_to_f32(x[i + l]);
            acc[l] += v * v;
        }
    double total = 0;
    for (int l = 0; l < 16; l++) total += acc[l];
    for (; i < n; i++) {
        const double v = qk_bf16_to_f32(x[i]);
        total += v * v;
    }
    return total;
}

double qk_sum_squares_bf16(const uint16_t *x, int64_t n) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i += 1024) total += sum_sq_bf16_block(x + i, n - i < 1024 ? n - i : 1024);
    return total;
}
