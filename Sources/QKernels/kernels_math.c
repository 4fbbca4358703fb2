// Exp-based elementwise kernels: cross-entropy, causal softmax, SwiGLU, RMSNorm, RoPE.
#include "qkernels.h"
#include "qk_internal.h"
#include <math.h>

// MARK: Reductions. Each may be reordered so that it vectorises; a row is always reduced by
// one call, so results do not depend on how rows are split among threads.

QK_INLINE float qk_max(const float *z, int64_t n) {
#pragma clang fp reassociate(on)
    float m0 = -INFINITY;
    for (int64_t j = 0; j < n; j++) m0 = fmaxf(m0, z[j]);
    return m0;
}

QK_INLINE float qk_dot(const float *a, const float *b, int64_t n) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++) s += a[j] * b[j];
    return s;
}

QK_INLINE float qk_dot3(const float *a, const float *b, const float *c, int64_t n) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++) s += a[j] * b[j] * c[j];
    return s;
}

/// Sum of exp(scale * (z - mx)); with store != 0 each exponential replaces its input.
QK_INLINE float qk_sum_exp(float *z, int64_t n, float mx, float scale, int store) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    if (store) {
        for (int64_t j = 0; j < n; j++) {
            float e = qk_expf(scale * (z[j] - mx));
            z[j] = e;
            s += e;
        }
    } else {
        for (int64_t j = 0; j < n; j++) s += qk_expf(scale * (z[j] - mx));
    }
    return s;
}

QK_CLONES
void qk_xent_rows(float *logits, int64_t rows, int64_t V, int64_t ld, const int32_t *targets,
                  float *losses, float dscale) {
    for (int64_t r = 0; r < rows; r++) {
        float *z = logits + r * ld;
        const int32_t t = targets[r];
        const float zt = z[t];
        const float mx = qk_max(z, V);
        const int grad = dscale != 0.0f;
        // Float sums over blocks, accumulated in double: fast and accurate for a 32k vocabulary.
        double sum = 0.0;
        for (int64_t j0 = 0; j0 < V; j0 += 1024) {
            int64_t n = V - j0 < 1024 ? V - j0 : 1024;
            sum += qk_sum_exp(z + j0, n, mx, 1.0f, grad);
        }
        losses[r] = (float)(log(sum) - ((double)zt - (double)mx));
        if (grad) {
            const float k = (float)(dscale / sum);
            for (int64_t j = 0; j < V; j++) z[j] *= k;
            z[t] -= dscale;
        }
    }
}

QK_CLONES
void qk_causal_softmax_rows(float *P, int64_t T, int64_t row0, int64_t row1, float scale) {
    for (int64_t i = row0; i < row1; i++) {
        float *p = P + i * T;
        const float mx = qk_max(p, i + 1);
        const float inv = 1.0f / qk_sum_exp(p, i + 1, mx, scale, 1);
        for (int64_t j = 0; j <= i; j++) p[j] *= inv;
        for (int64_t j = i + 1; j < T; j++) p[j] = 0.0f;
    }
}

QK_CLONES
void qk_causal_softmax_bwd_rows(float *dP, const float *P, int64_t T, int64_t row0, int64_t row1,
                                float scale) {
    for (int64_t i = row0; i < row1; i++) {
        float *d = dP + i * T;
        const float *p = P + i * T;
        const float dot = qk_dot(p, d, i + 1);
        for (int64_t j = 0; j <= i; j++) d[j] = scale * p[j] * (d[j] - dot);
        for (int64_t j = i + 1; j < T; j++) d[j] = 0.0f;
    }
}

QK_CLONES
void qk_swiglu_fwd(float *out, const float *h, int64_t rows, int64_t F) {
    for (int64_t r = 0; r < rows; r++) {
        const float *g = h + r * 2 * F, *u = g + F;
        float *o = out + r * F;
        for (int64_t f = 0; f < F; f++) o[f] = g[f] * qk_sigmoid(g[f]) * u[f];
    }
}

QK_CLONES
void qk_swiglu_bwd(float *dh, const float *dout, const float *h, int64_t rows, int64_t F) {
    for (int64_t r = 0; r < rows; r++) {
        const float *g = h + r * 2 * F, *u = g + F, *d = dout + r * F;
        float *dg = dh + r * 2 * F, *du = dg + F;
        for (int64_t f = 0; f < F; f++) {
            const float s = qk_sigmoid(g[f]);
            // silu(g) = g s;  d silu / dg = s (1 + g (1 - s))
            dg[f] = d[f] * u[f] * (s * (1.0f + g[f] * (1.0f - s)));
            du[f] = d[f] * (g[f] * s);
        }
    }
}

QK_CLONES
void qk_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int64_t rows,
                    int64_t C, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        const float rs = 1.0f / sqrtf(qk_dot(xr, xr, C) / (float)C + eps);
        rstd[r] = rs;
        float *o = out + r * C;
        for (int64_t c = 0; c < C; c++) o[c] = xr[c] * rs * w[c];
    }
}

QK_CLONES
void qk_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                    const float *rstd, int64_t rows, int64_t C) {
    // y = x r w, r = (mean(x^2) + eps)^(-1/2):  dx = r (dy w) - x r^3 / C * sum(dy w x)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dy = dout + r * C;
        float *dxr = dx + r * C;
        const float rs = rstd[r];
        const float k = qk_dot3(dy, w, xr, C) * rs * rs * rs / (float)C;
        for (int64_t c = 0; c < C; c++) {
            dxr[c] += rs * dy[c] * w[c] - k * xr[c];
            dw[c] += dy[c] * xr[c] * rs;
        }
    }
}

QK_CLONES
void qk_rope_rows(float *x, int64_t ld, int64_t row0, int64_t row1, int64_t T, int64_t pos0,
                  int64_t nHeads, int64_t hd, const float *cosT, const float *sinT, int inverse) {
    const int64_t half = hd / 2;
    const float sgn = inverse ? -1.0f : 1.0f;
    for (int64_t r = row0; r < row1; r++) {
        const int64_t pos = pos0 + r % T;
        const float *cs = cosT + pos * half, *sn = sinT + pos * half;
        for (int64_t h = 0; h < nHeads; h++) {
            float *a = x + r * ld + h * hd, *b = a + half;
            for (int64_t d = 0; d < half; d++) {
                const float c = cs[d], s = sgn * sn[d];
                const float x1 = a[d], x2 = b[d];
                a[d] = x1 * c - x2 * s;
                b[d] = x2 * c + x1 * s;
            }
        }
    }
}

QK_INLINE float qk_sum_sq_block(const float *x, int64_t n) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

QK_CLONES
double qk_sum_squares(const float *x, int64_t n) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i += 1024) total += qk_sum_sq_block(x + i, n - i < 1024 ? n - i : 1024);
    return total;
}

QK_CLONES
void qk_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

QK_CLONES
void qk_softmax(float *x, int64_t n, float scale) {
    const float mx = qk_max(x, n);
    const float inv = 1.0f / qk_sum_exp(x, n, mx, scale, 1);
    for (int64_t j = 0; j < n; j++) x[j] *= inv;
}
