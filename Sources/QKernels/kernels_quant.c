// Packed integer codes, dequantisation, activation and BitNet quantisation.
//
// Formats. bits == 0: ternary in base 3, five codes per byte, byte = sum (c_i + 1) 3^i
// (1.6 bits per weight). bits 2..8: an LSB-first bitstream of (c - qn), so b-bit codes take
// exactly b/8 bytes each. Every format packs a group of 40 codes into whole bytes, which is
// why chunked callers start at multiples of 40.
#include "qkernels.h"
#include "qk_internal.h"

QK_INLINE float qk_absmax(const float *x, int64_t n) {
#pragma clang fp reassociate(on)
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

QK_INLINE float qk_sum_abs_block(const float *x, int64_t n) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += fabsf(x[i]);
    return s;
}

// Decoding table of the ternary format: the five digits of each byte value 0..242.
static int8_t qk_ternary_lut[243][8];
static void qk_ternary_lut_build(void) {
    for (int b = 0; b < 243; b++) {
        int v = b;
        for (int i = 0; i < 5; i++) { qk_ternary_lut[b][i] = (int8_t)(v % 3 - 1); v /= 3; }
        qk_ternary_lut[b][5] = qk_ternary_lut[b][6] = qk_ternary_lut[b][7] = 0;
    }
}
// Built when the library loads, before any thread can read it.
__attribute__((constructor)) static void qk_ternary_lut_init(void) { qk_ternary_lut_build(); }

/// Code of element i of a bitstream (any i).
QK_INLINE int qk_bits_get(const uint8_t *packed, int bits, int qn, int64_t i) {
    int64_t bit = i * bits;
    int64_t byte = bit >> 3;
    int shift = (int)(bit & 7);
    uint32_t w = packed[byte];
    if (shift + bits > 8) w |= (uint32_t)packed[byte + 1] << 8;
    return (int)((w >> shift) & ((1u << bits) - 1)) + qn;
}

QK_CLONES
void qk_unpack_i8(int8_t *out, const uint8_t *packed, int bits, int qn, int64_t start, int64_t count) {
    if (bits == 0) {
        const uint8_t *p = packed + start / 5;
        int64_t groups = count / 5;
        for (int64_t k = 0; k < groups; k++) memcpy(out + 5 * k, qk_ternary_lut[p[k]], 5);
        for (int64_t i = groups * 5; i < count; i++) out[i] = qk_ternary_lut[p[groups]][i - groups * 5];
    } else if (bits == 8) {
        const uint8_t *p = packed + start;
        for (int64_t i = 0; i < count; i++) out[i] = (int8_t)((int)p[i] + qn);
    } else if (bits == 4) {
        const uint8_t *p = packed + start / 2;
        int64_t pairs = count / 2;
        for (int64_t k = 0; k < pairs; k++) {
            out[2 * k] = (int8_t)((p[k] & 15) + qn);
            out[2 * k + 1] = (int8_t)((p[k] >> 4) + qn);
        }
        if (count & 1) out[count - 1] = (int8_t)((p[pairs] & 15) + qn);
    } else {
        // Groups of 8 codes are `bits` whole bytes.
        const uint8_t *p = packed + start * bits / 8;
        const uint64_t mask = (1u << bits) - 1;
        int64_t groups = count / 8;
        for (int64_t k = 0; k < groups; k++) {
            uint64_t w = 0;
            memcpy(&w, p + k * bits, (size_t)bits);
            for (int j = 0; j < 8; j++) out[8 * k + j] = (int8_t)((int)((w >> (j * bits)) & mask) + qn);
        }
        for (int64_t i = groups * 8; i < count; i++)
            out[i] = (int8_t)qk_bits_get(packed, bits, qn, start + i);
    }
}

QK_CLONES
void qk_pack_i8(uint8_t *packed, const int8_t *codes, int bits, int qn, int64_t start, int64_t count) {
    if (bits == 0) {
        uint8_t *p = packed + start / 5;
        int64_t groups = (count + 4) / 5;
        for (int64_t k = 0; k < groups; k++) {
            int v = 0, m = 1;
            for (int j = 0; j < 5; j++) {
                int64_t i = 5 * k + j;
                int c = i < count ? codes[i] : 0;
                v += (c + 1) * m;
                m *= 3;
            }
            p[k] = (uint8_t)v;
        }
    } else if (bits == 8) {
        uint8_t *p = packed + start;
        for (int64_t i = 0; i < count; i++) p[i] = (uint8_t)((int)codes[i] - qn);
    } else {
        uint8_t *p = packed + start * bits / 8;
        int64_t groups = (count + 7) / 8;
        for (int64_t k = 0; k < groups; k++) {
            uint64_t w = 0;
            for (int j = 0; j < 8; j++) {
                int64_t i = 8 * k + j;
                uint64_t c = (uint64_t)((i < count ? (int)codes[i] : qn) - qn);
                w |= c << (j * bits);
            }
            int64_t nbytes = k == groups - 1 ? ((count - 8 * k) * bits + 7) / 8 : bits;
            memcpy(p + k * bits, &w, (size_t)nbytes);
        }
    }
}

QK_CLONES
void qk_dequant(float *out, const uint8_t *packed, int bits, int qn, int64_t start, int64_t count,
                float invScale) {
    // Align the start to a group of 40 with a scalar prologue, then decode in blocks.
    int64_t i = 0;
    while (i < count && ((start + i) % 40) != 0) {
        int c;
        if (bits == 0) {
            int64_t e = start + i;
            c = qk_ternary_lut[packed[e / 5]][e % 5];
        } else {
            c = qk_bits_get(packed, bits, qn, start + i);
        }
        out[i++] = (float)c * invScale;
    }
    int8_t tmp[4000];
    while (i < count) {
        int64_t n = count - i < 4000 ? count - i : 4000;
        qk_unpack_i8(tmp, packed, bits, qn, start + i, n);
        float *o = out + i;
        for (int64_t j = 0; j < n; j++) o[j] = (float)tmp[j] * invScale;
        i += n;
    }
}

QK_CLONES
void qk_act_quant_rows(float *x, int64_t rows, int64_t C, int64_t ld) {
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * ld;
        const float amax = qk_absmax(xr, C);
        if (amax == 0.0f) continue;
        const float s = 127.0f / amax, inv = amax / 127.0f;
        for (int64_t c = 0; c < C; c++) {
            float q = rintf(xr[c] * s);
            q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
            xr[c] = q * inv;
        }
    }
}

QK_CLONES
void qk_act_quant_rows_codes(float *x, int8_t *codes, float *scales, int64_t rows, int64_t C, int64_t ld) {
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * ld;
        int8_t *cr = codes + r * C;
        const float amax = qk_absmax(xr, C);
        if (amax == 0.0f) {
            for (int64_t c = 0; c < C; c++) cr[c] = 0;
            scales[r] = 0.0f;
            continue;
        }
        const float s = 127.0f / amax, inv = amax / 127.0f;
        for (int64_t c = 0; c < C; c++) {
            float q = rintf(xr[c] * s);
            q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
            cr[c] = (int8_t)q;
            xr[c] = q * inv;
        }
        scales[r] = inv;
    }
}

QK_CLONES
void qk_ternarize(float *out, const float *w, int64_t n, float beta) {
    const float inv = 1.0f / beta;
    for (int64_t i = 0; i < n; i++) {
        float q = rintf(w[i] * inv);
        q = q < -1.0f ? -1.0f : (q > 1.0f ? 1.0f : q);
        out[i] = q * beta;
    }
}

QK_CLONES
double qk_abs_sum(const float *w, int64_t n) {
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
        int64_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
        total += qk_sum_abs_block(w + i0, i1 - i0);
    }
    return total;
}

int qk_max_code(const uint8_t *packed, int bits, int qn, int64_t start, int64_t count) {
    int8_t tmp[4000];
    int best = -128;
    for (int64_t i = 0; i < count; i += 4000) {
        int64_t n = count - i < 4000 ? count - i : 4000;
        qk_unpack_i8(tmp, packed, bits, qn, start + i, n);
        for (int64_t j = 0; j < n; j++) best = tmp[j] > best ? tmp[j] : best;
    }
    return best;
}

// MARK: BF16 latent weights (BitNet with 2-byte master weights)

QK_CLONES
void qk_bf16_to_f32_array(float *out, const uint16_t *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = qk_bf16_to_f32(in[i]);
}

QK_CLONES
void qk_f32_to_bf16_array(uint16_t *out, const float *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = qk_f32_to_bf16(in[i]);
}

// MARK: Fingerprints

/// A 64-bit hash of bytes, chaining from `seed`: each 8-byte word is mixed with a
/// multiply-xorshift step. Not cryptographic; fast enough to run over every weight.
uint64_t qk_fingerprint(const void *data, int64_t n, uint64_t seed) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t h = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(n + 1));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= w * 0xBF58476D1CE4E5B9ull;
        h = (h << 27 | h >> 37) * 0x94D049BB133111EBull;
    }
    uint64_t tail = 0;
    for (int64_t j = 0; i + j < n; j++) tail |= (uint64_t)p[i + j] << (8 * j);
    h ^= tail * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

QK_CLONES
void qk_rescale_i32(float *out, int64_t ldo, const int32_t *c, int64_t ldc, int64_t rows, int64_t cols,
                    const float *rowScales, float colScale, int accumulate) {
    for (int64_t r = 0; r < rows; r++) {
        const float s = rowScales[r] * colScale;
        float *o = out + r * ldo;
        const int32_t *cr = c + r * ldc;
        if (accumulate) {
            for (int64_t j = 0; j < cols; j++) o[j] += (float)cr[j] * s;
        } else {
            for (int64_t j = 0; j < cols; j++) o[j] = (float)cr[j] * s;
        }
    }
}

QK_CLONES
void qk_ternary_codes(int8_t *out, const float *w, int64_t n, float beta) {
    const float inv = 1.0f / beta;
    for (int64_t i = 0; i < n; i++) {
        float q = rintf(w[i] * inv);
        out[i] = (int8_t)(q < -1.0f ? -1.0f : (q > 1.0f ? 1.0f : q));
    }
}


// MARK: - int8 incoming gradients (the int8 dX backward)

QK_CLONES
void qk_rows_absmax(float *amax, const float *in, int64_t ldi, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) amax[r] = qk_absmax(in + r * ldi, cols);
}

QK_CLONES
void qk_round_i8(int8_t *out, int64_t ldo, const float *in, int64_t ldi, int64_t rows, int64_t cols,
                 const float *inverseSteps, uint64_t seed, uint64_t first, int64_t stride, int stochastic) {
    const uint64_t k = qk_splitmix64(seed);
    const uint32_t k1 = (uint32_t)k, k2 = (uint32_t)(k >> 32);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ldi;
        int8_t *o = out + r * ldo;
        const float inv = inverseSteps[r];
        const uint64_t e0 = first + (uint64_t)r * (uint64_t)stride;
        for (int64_t c = 0; c < cols; c++) {
            float u = 0.5f;
            if (stochastic) {
                const uint64_t e = e0 + (uint64_t)c;
                const uint32_t h = qk_mix32(qk_mix32((uint32_t)e ^ k1) ^ k2 ^ (uint32_t)(e >> 32) * 0x9e3779b9u);
                u = (float)(h >> 8) * 0x1.0p-24f;  // [0, 1) in steps of 2^-24
            }
            // floor(v + u): up with probability frac(v) when u is uniform; u = 1/2 rounds to nearest.
            // fmaxf/fminf map NaN to a bound: the loss check reports a NaN gradient, never an undefined cast.
            const float q = fminf(fmaxf(floorf(x[c] * inv + u), -127.0f), 127.0f);
            o[c] = (int8_t)q;
        }
    }
}
