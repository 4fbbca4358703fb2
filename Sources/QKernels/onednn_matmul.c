// oneDNN's BF16 matmul primitive (BF16 operands, FP32 accumulation and output), loaded at run
// time with dlopen like the int8 GEMM. The primitive API needs oneDNN's types, so this file
// compiles against its headers (Debian libdnnl-dev) when they are present; a build without
// them still runs and reports the path unavailable. Primitives are created once per shape and
// stride pattern and cached: a training step multiplies the same few shapes every time.
#include "qkernels.h"
#include "qk_internal.h"
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#if __has_include(<oneapi/dnnl/dnnl.h>) && !defined(QK_NO_DNNL_HEADERS)  // the define tests the header-less build
#include <oneapi/dnnl/dnnl.h>
#define QK_HAVE_DNNL_HEADERS 1
#endif

#ifdef QK_HAVE_DNNL_HEADERS

#define DNNL_FUNCTIONS(X)                                                                            \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_memory_desc_init_by_strides)                  \
    X(dnnl_matmul_desc_init) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy)           \
    X(dnnl_post_ops_create) X(dnnl_post_ops_destroy) X(dnnl_post_ops_append_sum)                    \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy) \
    X(dnnl_primitive_create) X(dnnl_memory_create) X(dnnl_memory_destroy) X(dnnl_primitive_execute)  \
    X(dnnl_stream_wait) X(dnnl_primitive_destroy)

#define DECLARE(name) static __typeof__(&name) p_##name;
DNNL_FUNCTIONS(DECLARE)
#undef DECLARE

static dnnl_engine_t engine;
static dnnl_stream_t stream;
#endif

static const char *status = "not loaded";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
#ifndef QK_HAVE_DNNL_HEADERS
    status = "this build has no oneDNN headers (install libdnnl-dev and rebuild)";
#else
    __builtin_cpu_init();
    void *h = qk_dnnl_open(__builtin_cpu_supports("avx512bf16"), "this CPU has no AVX-512 BF16", &status);
    if (!h) return;
#define RESOLVE(name)                                          \
    p_##name = (__typeof__(&name))dlsym(h, #name);             \
    if (!p_##name) {                                           \
        status = "libdnnl.so.2 lacks " #name;                  \
        return;                                                \
    }
    DNNL_FUNCTIONS(RESOLVE)
#undef RESOLVE
    if (p_dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        status = "oneDNN could not create a CPU engine";
        return;
    }
    status = NULL;
#endif
}

int qk_bf16_matmul_available(void) {
    pthread_once(&once, load);
    return status == NULL;
}

const char *qk_bf16_matmul_status(void) {
    pthread_once(&once, load);
    return status ? status : "oneDNN BF16 matmul (AVX-512 BF16)";
}

#ifdef QK_HAVE_DNNL_HEADERS

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    int64_t key[10];
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a, b, c;
} cached;

enum { CACHE_SIZE = 64 };
static cached cache[CACHE_SIZE];
static int cache_count, cache_next;

static void destroy_entry(cached *e) {
    if (e->primitive) p_dnnl_primitive_destroy(e->primitive);
    e->primitive = NULL;
}

// Creates the primitive for key (M, N, K, a strides, b strides, ldc, accumulate), or NULL.
static dnnl_primitive_t create(const int64_t key[10], dnnl_memory_desc_t *a, dnnl_memory_desc_t *b,
                               dnnl_memory_desc_t *c) {
    const dnnl_dims_t ad = {key[0], key[2]}, as = {key[3], key[4]};
    const dnnl_dims_t bd = {key[2], key[1]}, bs = {key[5], key[6]};
    const dnnl_dims_t cd = {key[0], key[1]}, cs = {key[7], 1};
    if (p_dnnl_memory_desc_init_by_strides(a, 2, ad, dnnl_bf16, as) != dnnl_success ||
        p_dnnl_memory_desc_init_by_strides(b, 2, bd, dnnl_bf16, bs) != dnnl_success ||
        p_dnnl_memory_desc_init_by_strides(c, 2, cd, dnnl_f32, cs) != dnnl_success)
        return NULL;
    dnnl_matmul_desc_t desc;
    if (p_dnnl_matmul_desc_init(&desc, a, b, NULL, c) != dnnl_success) return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    if (p_dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (key[8]) {
        if (p_dnnl_post_ops_create(&ops) == dnnl_success && p_dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success)
            p_dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    if (p_dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success) {
        if (p_dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
        p_dnnl_primitive_desc_destroy(pd);
    }
    if (ops) p_dnnl_post_ops_destroy(ops);
    p_dnnl_primitive_attr_destroy(attr);
    return prim;
}

// The cached entry for key, created when absent (evicting round-robin when full).
static cached *lookup(const int64_t key[10]) {
    for (int i = 0; i < cache_count; i++)
        if (memcmp(cache[i].key, key, sizeof cache[i].key) == 0) return &cache[i];
    cached fresh;
    memcpy(fresh.key, key, sizeof fresh.key);
    fresh.primitive = create(key, &fresh.a, &fresh.b, &fresh.c);
    if (!fresh.primitive) return NULL;
    int slot;
    if (cache_count < CACHE_SIZE) {
        slot = cache_count++;
    } else {
        slot = cache_next;
        cache_next = (cache_next + 1) % CACHE_SIZE;
        destroy_entry(&cache[slot]);
    }
    cache[slot] = fresh;
    return &cache[slot];
}
#endif

int qk_bf16_matmul(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t a_rs, int64_t a_cs,
                   const uint16_t *B, int64_t b_rs, int64_t b_cs, float *C, int64_t ldc, int accumulate) {
    if (!qk_bf16_matmul_available()) return -1;
#ifndef QK_HAVE_DNNL_HEADERS
    (void)M, (void)N, (void)K, (void)A, (void)a_rs, (void)a_cs, (void)B, (void)b_rs, (void)b_cs, (void)C, (void)ldc,
        (void)accumulate;
    return -1;
#else
    if (M == 0 || N == 0) return 0;
    if (K == 0) {
        if (!accumulate)
            for (int64_t r = 0; r < M; r++) memset(C + r * ldc, 0, (size_t)N * sizeof(float));
        return 0;
    }
    const int64_t key[10] = {M, N, K, a_rs, a_cs, b_rs, b_cs, ldc, accumulate ? 1 : 0, 0};
    pthread_mutex_lock(&cache_lock);
    cached *e = lookup(key);
    int rc = -2;
    if (e) {
        dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
        if (p_dnnl_memory_create(&ma, &e->a, engine, (void *)A) == dnnl_success &&
            p_dnnl_memory_create(&mb, &e->b, engine, (void *)B) == dnnl_success &&
            p_dnnl_memory_create(&mc, &e->c, engine, C) == dnnl_success) {
            const dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
            rc = (int)p_dnnl_primitive_execute(e->primitive, stream, 3, args);
            if (rc == 0) rc = (int)p_dnnl_stream_wait(stream);
        }
        if (ma) p_dnnl_memory_destroy(ma);
        if (mb) p_dnnl_memory_destroy(mb);
        if (mc) p_dnnl_memory_destroy(mc);
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
#endif
}
