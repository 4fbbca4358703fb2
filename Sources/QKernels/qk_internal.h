// Shared helpers of the kernel files; not part of the API Swift sees.
#ifndef QTRAIN_QK_INTERNAL_H
#define QTRAIN_QK_INTERNAL_H
#include <stdint.h>
#include <string.h>
#include <math.h>

#define QK_INLINE static inline __attribute__((always_inline))
// ThreadSanitizer instruments the ifunc resolvers of target_clones, which run during relocation,
// before its runtime exists: a ThreadSanitizer build compiles one portable version instead.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QK_NO_CLONES 1
#endif
#endif
#ifdef QK_NO_CLONES
#define QK_CLONES
#else
#define QK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

// exp(x) for float in the Cephes style: range reduction by ln 2, degree-6 polynomial,
// scaling through the exponent bits. Relative error about 2e-7; branch-free so it vectorises.
QK_INLINE float qk_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float k = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * (r * r) + r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return y * two_k;
}

QK_INLINE float qk_sigmoid(float x) { return 1.0f / (1.0f + qk_expf(-x)); }

// BF16 is the top half of an FP32; stores round to nearest, ties to even (inputs are finite).
QK_INLINE float qk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

QK_INLINE uint16_t qk_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

// A 32-bit integer hash (two xor-shift-multiply rounds): cheap enough to vectorise, with
// every output bit depending on every input bit.
QK_INLINE uint32_t qk_mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

QK_INLINE uint64_t qk_splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// libdnnl.so.2, opened for one of the oneDNN paths (onednn.c): NULL, with *why set, when
// QTRAIN_DISABLE_ONEDNN is in the environment, when the CPU lacks the path's instructions
// (cpu_ok false; cpu_missing names them) or when the library is not installed. Sets
// OMP_WAIT_POLICY=PASSIVE first: oneDNN threads through OpenMP, whose idle threads must sleep,
// not spin against OpenBLAS's.
void *qk_dnnl_open(int cpu_ok, const char *cpu_missing, const char **why);

#endif
