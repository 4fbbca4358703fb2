// CPU feature queries, for choosing the OpenBLAS kernel family when OpenBLAS cannot
// identify the processor (virtual machines often report a generic model).
#include "qkernels.h"

int qk_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

int qk_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#include <cpuid.h>

int qk_cpu_bf16_outpaces_fp32(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    // "AuthenticAMD": Zen 4 and later run AVX-512 BF16 dot products at several times the FP32 rate.
    const int amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
    if (amd) return 1;
    // Elsewhere BF16 pays only with AMX tiles (leaf 7, EDX bit 22): AVX-512 BF16 alone runs its
    // dot products on one port, no faster than two ports of FP32 FMAs.
    if (a < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (d >> 22) & 1u;
}
