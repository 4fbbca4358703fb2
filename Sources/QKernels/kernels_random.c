// Philox4x32-10, normal initialisation, dense AdamW and the fused DQT update with
// stochastic rounding.
#include "qkernels.h"
#include "qk_internal.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

QK_INLINE void qk_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                             uint32_t k1, uint32_t *o0, uint32_t *o1, uint32_t *o2, uint32_t *o3) {
    for (int r = 0; r < 10; r++) {
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        const uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    *o0 = c0; *o1 = c1; *o2 = c2; *o3 = c3;
}

void qk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    qk_philox(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], &out[0], &out[1], &out[2], &out[3]);
}

QK_INLINE float qk_u24(uint32_t r) { return (float)(r >> 8) * 0x1p-24f; }

typedef uint64_t qk_u64x8 __attribute__((vector_size(64)));
typedef uint32_t qk_u32x8 __attribute__((vector_size(32)));
typedef int32_t qk_i32x8 __attribute__((vector_size(32)));
typedef float qk_f32x8 __attribute__((vector_size(32)));

/// Eight Philox blocks (32 words) for counters blk0 .. blk0+7, with each 32-bit word
/// held in a 64-bit lane so that the 32x32->64 products map onto vector multiplies.
QK_INLINE void qk_words_8blocks(uint32_t *out, uint64_t blk0, uint32_t k0, uint32_t k1,
                                      uint32_t c2, uint32_t c3) {
    const qk_u64x8 lo32 = (qk_u64x8){0, 0, 0, 0, 0, 0, 0, 0} + 0xFFFFFFFFull;
    qk_u64x8 idx = (qk_u64x8){0, 1, 2, 3, 4, 5, 6, 7} + blk0;
    qk_u64x8 a = idx & lo32, b = idx >> 32;
    qk_u64x8 c = (qk_u64x8){0, 0, 0, 0, 0, 0, 0, 0} + (uint64_t)c2;
    qk_u64x8 d = (qk_u64x8){0, 0, 0, 0, 0, 0, 0, 0} + (uint64_t)c3;
    for (int r = 0; r < 10; r++) {
        const qk_u64x8 p0 = a * (uint64_t)PHILOX_M0;
        const qk_u64x8 p1 = c * (uint64_t)PHILOX_M1;
        const qk_u64x8 na = (p1 >> 32) ^ b ^ (uint64_t)k0;
        const qk_u64x8 nc = (p0 >> 32) ^ d ^ (uint64_t)k1;
        b = p1 & lo32;
        d = p0 & lo32;
        a = na;
        c = nc;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    for (int l = 0; l < 8; l++) {
        out[4 * l] = (uint32_t)a[l];
        out[4 * l + 1] = (uint32_t)b[l];
        out[4 * l + 2] = (uint32_t)c[l];
        out[4 * l + 3] = (uint32_t)d[l];
    }
}

/// The same blocks as uniforms: each word's top 24 bits times 2^-24.
QK_INLINE void qk_uniform_8blocks(float *out, uint64_t blk0, uint32_t k0, uint32_t k1,
                                      uint32_t c2, uint32_t c3) {
    uint32_t w[32];
    qk_words_8blocks(w, blk0, k0, k1, c2, c3);
    for (int j = 0; j < 32; j++) out[j] = qk_u24(w[j]);
}

/// Uniforms for elements [start, start+n) with start % 4 == 0 and n % 4 == 0.
QK_INLINE void qk_uniform_blocks(float *out, int64_t start, int64_t n, uint32_t k0, uint32_t k1,
                                     uint32_t c2, uint32_t c3) {
    const int64_t b0 = start / 4, blocks = n / 4;
    int64_t k = 0;
    for (; k + 8 <= blocks; k += 8) qk_uniform_8blocks(out + 4 * k, (uint64_t)(b0 + k), k0, k1, c2, c3);
    for (; k < blocks; k++) {
        const uint64_t blk = (uint64_t)(b0 + k);
        uint32_t r0, r1, r2, r3;
        qk_philox((uint32_t)blk, (uint32_t)(blk >> 32), c2, c3, k0, k1, &r0, &r1, &r2, &r3);
        out[4 * k] = qk_u24(r0);
        out[4 * k + 1] = qk_u24(r1);
        out[4 * k + 2] = qk_u24(r2);
        out[4 * k + 3] = qk_u24(r3);
    }
}

QK_CLONES
void qk_philox_uniform(float *out, int64_t start, int64_t n, const uint32_t key[2], uint32_t c2,
                       uint32_t c3) {
    // Whole blocks through the fast path; the ragged ends one block at a time.
    int64_t i = 0;
    while (i < n && ((start + i) % 4 != 0 || n - i < 4)) {
        const uint64_t blk = (uint64_t)((start + i) / 4);
        uint32_t r[4];
        qk_philox((uint32_t)blk, (uint32_t)(blk >> 32), c2, c3, key[0], key[1], &r[0], &r[1], &r[2], &r[3]);
        out[i] = qk_u24(r[(start + i) % 4]);
        i++;
    }
    int64_t body = ((n - i) / 4) * 4;
    qk_uniform_blocks(out + i, start + i, body, key[0], key[1], c2, c3);
    i += body;
    for (; i < n; i++) {
        const uint64_t blk = (uint64_t)((start + i) / 4);
        uint32_t r[4];
        qk_philox((uint32_t)blk, (uint32_t)(blk >> 32), c2, c3, key[0], key[1], &r[0], &r[1], &r[2], &r[3]);
        out[i] = qk_u24(r[(start + i) % 4]);
    }
}

QK_CLONES
void qk_f32_to_bf16_stochastic(uint16_t *out, const float *in, int64_t start, int64_t n,
                               const uint32_t key[2], uint32_t c2, uint32_t c3) {
    enum { CHUNK = 1024 };
    float u[CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        const int64_t len = n - i0 < CHUNK ? n - i0 : CHUNK;
        qk_philox_uniform(u, start + i0, len, key, c2, c3);
        for (int64_t j = 0; j < len; j++) {
            const float x = in[i0 + j];
            uint32_t bits;
            __builtin_memcpy(&bits, &x, 4);
            // u holds 24 random bits as k * 2^-24; its top 16 are floor(u * 2^16).
            const uint32_t r = (uint32_t)(u[j] * 65536.0f);
            out[i0 + j] = x != x ? (uint16_t)((bits >> 16) | 0x40) : (uint16_t)((bits + r) >> 16);
        }
    }
}

void qk_philox_normal(float *out, int64_t start, int64_t n, const uint32_t key[2], uint32_t c2,
                      uint32_t c3, float std) {
    // Box-Muller on the block's four words: (r0, r1) give lanes 0 and 1, (r2, r3) lanes 2 and 3.
    for (int64_t i = 0; i < n; i++) {
        const int64_t e = start + i;
        const uint64_t blk = (uint64_t)(e / 4);
        uint32_t r[4];
        qk_philox((uint32_t)blk, (uint32_t)(blk >> 32), c2, c3, key[0], key[1], &r[0], &r[1], &r[2], &r[3]);
        const int lane = (int)(e % 4), pair = lane / 2;
        const double u1 = ((double)(r[2 * pair] >> 8) + 0.5) * 0x1p-24;
        const double u2 = (double)(r[2 * pair + 1] >> 8) * 0x1p-24;
        const double rad = sqrt(-2.0 * log(u1));
        const double z = (lane % 2 == 0) ? rad * cos(2.0 * M_PI * u2) : rad * sin(2.0 * M_PI * u2);
        out[i] = (float)(z * (double)std);
    }
}

/// AdamW's constants of one step, derived once per call.
typedef struct {
    float b1, b2, c1, c2, ib1, ib2, eps, wd, gs;
} qk_adam_consts;

QK_INLINE qk_adam_consts qk_adam_prepare(const qk_adamw_params *p) {
    qk_adam_consts k = {p->beta1, p->beta2, 1.0f - p->beta1, 1.0f - p->beta2, 1.0f / p->biasCorr1,
                        1.0f / p->biasCorr2, p->eps, p->weightDecay, p->gradScale};
    return k;
}

/// The moments' update of one element (m, v in place) and AdamW's direction m̂ / (√v̂ + ε).
/// Shared by the dense, BF16 and DQT updates so that all three take the same step.
QK_INLINE float qk_adam_direction(float g, float *m, float *v, const qk_adam_consts *k) {
    const float gi = g * k->gs;
    const float mi = k->b1 * *m + k->c1 * gi;
    const float vi = k->b2 * *v + k->c2 * (gi * gi);
    *m = mi;
    *v = vi;
    return (mi * k->ib1) / (sqrtf(vi * k->ib2) + k->eps);
}

/// The AdamW update of one weight (decoupled weight decay), moments updated in place.
QK_INLINE float qk_adamw_value(float w, float g, float *m, float *v, const qk_adam_consts *k, float lr) {
    const float d = qk_adam_direction(g, m, v, k);
    return w - lr * (d + k->wd * w);
}

QK_CLONES
void qk_adamw(float *w, const float *g, float *m, float *v, int64_t n, const qk_adamw_params *p) {
    const qk_adam_consts k = qk_adam_prepare(p);
    for (int64_t i = 0; i < n; i++) w[i] = qk_adamw_value(w[i], g[i], &m[i], &v[i], &k, p->lr);
}

/// One element of the DQT update: AdamW's proposal taken on the old grid, written so that an
/// unchanged scale keeps the code term exact, then stochastic rounding onto the new grid:
/// x = (w - lr (adam + wd w)) * scaleNew.
QK_INLINE int qk_dqt_element(int code, float g, float *m, float *v, float u, float ratio, float invOld, float lrScaled,
                             const qk_adam_consts *k, int qn, int qp) {
    const float adam = qk_adam_direction(g, m, v, k);
    const float w = (float)code * invOld;
    const float x = (float)code * ratio - lrScaled * (adam + k->wd * w);
    return qk_stochastic_round(x, u, qn, qp);
}

QK_CLONES
int64_t qk_dqt_update(uint8_t *packed, int bits, int qn, int qp, int64_t start, int64_t count,
                      const float *g, float *m, float *v, float scaleOld, float scaleNew,
                      const qk_adamw_params *p, const uint32_t key[2], uint32_t c2, uint32_t c3) {
    enum { CHUNK = 4000 };
    int8_t codes[CHUNK];
    float u[CHUNK];
    const qk_adam_consts k = qk_adam_prepare(p);
    const float ratio = scaleNew / scaleOld, invOld = 1.0f / scaleOld;
    const float lrScaled = p->lr * scaleNew;
    int64_t changed = 0;
    for (int64_t i0 = 0; i0 < count; i0 += CHUNK) {
        const int64_t n = count - i0 < CHUNK ? count - i0 : CHUNK;
        qk_unpack_i8(codes, packed, bits, qn, start + i0, n);
        qk_philox_uniform(u, start + i0, n, key, c2, c3);
        int64_t ch = 0;
        for (int64_t j = 0; j < n; j++) {
            const int old = codes[j];
            const int c = qk_dqt_element(old, g[i0 + j], &m[i0 + j], &v[i0 + j], u[j], ratio, invOld, lrScaled, &k, qn, qp);
            ch += c != old;
            codes[j] = (int8_t)c;
        }
        changed += ch;
        qk_pack_i8(packed, codes, bits, qn, start + i0, n);
    }
    return changed;
}
