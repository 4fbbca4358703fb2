// Prompt processing: a prompt's rows multiply the weights in one integer GEMM (oneDNN), which
// takes int8 rows. Ternary weights are held at 2 bits for decoding's matrix-vector products,
// so a GEMM unpacks them a block of rows at a time into scratch.
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
// prompt and decoding share the key/value cache). Sixteen lanes per key, summed as a tree, so
// the loops vectorise without reordering anything a compiler must keep in order.
QK_CLONES
void qk_attend_row(float *out, float *scores, const float *q, const float *k, const float *v, int64_t ld, int64_t S,
                   int64_t d, float scale) {
    const int64_t full = d / 16 * 16;
    for (int64_t j = 0; j < S; j++) {
        const float *kj = k + j * ld;
        float acc[16] = {0};
        for (int64_t e = 0; e < full; e += 16) {
            for (int l = 0; l < 16; l++) acc[l] += q[e + l] * kj[e + l];
        }
        for (int w = 8; w >= 1; w /= 2) {
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        }
        float s = acc[0];
        for (int64_t e = full; e < d; e++) s += q[e] * kj[e];
        scores[j] = s;
    }
    qk_softmax(scores, S, scale);
    for (int64_t e = 0; e < d; e++) out[e] = 0;
    for (int64_t j = 0; j < S; j++) {
        const float *vj = v + j * ld, pj = scores[j];
        for (int64_t e = 0; e < d; e++) out[e] += pj * vj[e];
    }
}
