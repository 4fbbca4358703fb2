// Prompt processing and decoding's per-token work. A prompt's rows multiply the weights in one
// integer GEMM (oneDNN), which takes int8 rows: ternary weights are held at 2 bits for
// decoding's matrix-vector products, so a GEMM unpacks them a block of rows at a time into
// scratch. Then one row's attention over the key/value cache, and the pool decoding's small
// jobs run on.
#include "qkernels.h"
#include "qk_internal.h"

QK_CLONES
void qk_ternary_unpack2(int8_t *out, int64_t ldo, const uint8_t *W, int64_t ldw, int64_t rows, int64_t K) {
    const int64_t full = K / 64;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *w = W + r * ldw;
        int8_t *o = out + r * ldo;
        for (int64_t b = 0; b < full; b++) {
            for (int t = 0; t < 4; t++) {
                for (int j = 0; j < 16; j++) o[64 * b + 16 * t + j] = (int8_t)(((w[16 * b + j] >> (2 * t)) & 3) - 1);
            }
        }
        for (int64_t k = 64 * full; k < K; k++) {
            const int64_t t = (k % 64) / 16, j = k % 16;
            o[k] = (int8_t)(((w[16 * full + j] >> (2 * t)) & 3) - 1);
        }
    }
}

// One query row against S cached keys and values, as decoding a token attends (the same file:
// prompt and decoding share the key/value cache). The scores are dot products of d floats,
// four keys at a time in 16-float lanes on AVX-512 (d a multiple of 16), else a loop.
#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static void scores_avx512(float *s, const float *q, const float *k, int64_t ld, int64_t S, int64_t d) {
    int64_t j = 0;
    for (; j + 4 <= S; j += 4) {
        const float *k0 = k + j * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t e = 0; e < d; e += 16) {
            const __m512 x = _mm512_loadu_ps(q + e);
            a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k0 + e), a0);
            a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k1 + e), a1);
            a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k2 + e), a2);
            a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k3 + e), a3);
        }
        s[j] = _mm512_reduce_add_ps(a0);
        s[j + 1] = _mm512_reduce_add_ps(a1);
        s[j + 2] = _mm512_reduce_add_ps(a2);
        s[j + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; j < S; j++) {
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t e = 0; e < d; e += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + e), _mm512_loadu_ps(k + j * ld + e), a0);
        s[j] = _mm512_reduce_add_ps(a0);
    }
}
#endif

QK_CLONES
static void weighted_values(float *out, const float *p, const float *v, int64_t ld, int64_t S, int64_t d) {
    for (int64_t e = 0; e < d; e++) out[e] = 0;
    for (int64_t j = 0; j < S; j++) {
        const float *vj = v + j * ld, pj = p[j];
        for (int64_t e = 0; e < d; e++) out[e] += pj * vj[e];
    }
}

void qk_attend_row(float *out, float *scores, const float *q, const float *k, const float *v, int64_t ld, int64_t S,
                   int64_t d, float scale) {
#if defined(__x86_64__)
    static int wide = -1;  // decided once; a racing first call stores the same value
    if (__atomic_load_n(&wide, __ATOMIC_RELAXED) < 0) __atomic_store_n(&wide, qk_cpu_has_avx512(), __ATOMIC_RELAXED);
    if (wide && d % 16 == 0) {
        scores_avx512(scores, q, k, ld, S, d);
    } else
#endif
    {
        for (int64_t j = 0; j < S; j++) {
            const float *kj = k + j * ld;
            float s = 0;
            for (int64_t e = 0; e < d; e++) s += q[e] * kj[e];
            scores[j] = s;
        }
    }
    qk_softmax(scores, S, scale);
    weighted_values(out, scores, v, ld, S, d);
}

// A pool for decoding's many small products (a token is about 60 of them, each tens of
// microseconds): its helper threads spin briefly between jobs instead of sleeping, since
// waking a sleeping thread costs about as much as a product. After ~0.1 ms without work they
// sleep on a condition variable, so a pool never spins while nothing is decoded.
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { POOL_MAX = 64, POOL_SPINS = 4096, POOL_ALONE = 256 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic uint64_t generation;  // one per job
    _Atomic int64_t pending;      // helpers that have not finished the current job
    int sleepers, helpers;
    qk_part_fn fn;
    void *ctx;
    int64_t parts;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static inline void pool_pause(void) {
#if defined(__x86_64__)
    _mm_pause();
#endif
}

static void *pool_helper(void *arg) {
    const int64_t me = (int64_t)(intptr_t)arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        for (int spins = 0; (g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen; spins++) {
            if (spins < POOL_SPINS) {
                pool_pause();
                continue;
            }
            pthread_mutex_lock(&pool.lock);
            pool.sleepers++;
            while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pool.sleepers--;
            pthread_mutex_unlock(&pool.lock);
        }
        seen = g;
        if (me < pool.parts) pool.fn(pool.ctx, me);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

int64_t qk_pool_parts(int64_t threads) {
    if (pool.helpers == 0 && threads > 1) {  // called from one thread at a time (the decoder's)
        for (int64_t i = 1; i < threads && i < POOL_MAX; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, pool_helper, (void *)(intptr_t)i) != 0) break;
            pthread_detach(t);
            pool.helpers++;
        }
    }
    return pool.helpers + 1;
}

void qk_pool_run(int64_t threads, int64_t parts, qk_part_fn fn, void *ctx) {
    // After a job whose helpers came late (another process had their core), the next jobs run
    // on the caller alone: waiting on a descheduled helper costs more than its part.
    static int alone;
    const int64_t most = qk_pool_parts(threads);
    if (parts > most) parts = most;
    if (parts <= 1 || alone > 0) {
        if (alone > 0) alone--;
        for (int64_t p = 0; p < parts; p++) fn(ctx, p);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.parts = parts;
    atomic_store_explicit(&pool.pending, pool.helpers, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    fn(ctx, 0);
    for (int spins = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; spins++) {
        if (spins < POOL_SPINS) {
            pool_pause();
        } else {
            alone = POOL_ALONE;
            sched_yield();
        }
    }
}
