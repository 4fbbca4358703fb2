// Hot loops of qtrain, written in portable C so that the compiler can vectorise them and
// pick an AVX-512 or AVX2 clone at run time. Every function works on a range that the
// Swift caller chooses, so threading and chunking stay in Swift. Floating-point
// contraction is off: a vector body and its scalar tail give identical bits, so results do
// not depend on how a caller splits the work.
#ifndef QTRAIN_QKERNELS_H
#define QTRAIN_QKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Elementwise math (exp-based)

/// Cross-entropy of rows [0, rows) of `logits` (row stride `ld`, V columns) against
/// `targets`; writes each row's loss. When `dscale` is non-zero the logits are overwritten
/// with `dscale * (softmax - onehot)`, the gradient of `dscale * loss`.
void qk_xent_rows(float *logits, int64_t rows, int64_t V, int64_t ld, const int32_t *targets,
                  float *losses, float dscale);

/// Causal softmax of rows [row0, row1) of a T x T score matrix: P[i][j] = softmax_j<=i(scale * S[i][j]),
/// zero above the diagonal. In place.
void qk_causal_softmax_rows(float *P, int64_t T, int64_t row0, int64_t row1, float scale);

/// Backward of the causal softmax: dP is overwritten with dS = scale * P * (dP - sum_k P dP).
void qk_causal_softmax_bwd_rows(float *dP, const float *P, int64_t T, int64_t row0, int64_t row1,
                                float scale);

/// In-place softmax of scale * x over n entries.
void qk_softmax(float *x, int64_t n, float scale);

/// SwiGLU forward: out[r][f] = silu(h[r][f]) * h[r][F + f] for rows [0, rows).
void qk_swiglu_fwd(float *out, const float *h, int64_t rows, int64_t F);

/// SwiGLU backward: writes dh[r][f] (gate) and dh[r][F + f] (up) from dout and the saved h.
void qk_swiglu_bwd(float *dh, const float *dout, const float *h, int64_t rows, int64_t F);

/// RMSNorm forward over rows: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
void qk_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int64_t rows,
                    int64_t C, float eps);

/// RMSNorm backward over rows: dx += ..., dw += sum over these rows of dout * x * rstd.
void qk_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                    const float *rstd, int64_t rows, int64_t C);

/// Rotary embedding in the rotate-half layout on rows [row0, row1) of a (B*T) x ld matrix whose
/// first nHeads*hd columns are heads of size hd; row r sits at position pos0 + r % T.
/// `cosT`/`sinT` are (positions x hd/2) tables. inverse != 0 rotates by the negative angle
/// (the backward pass).
void qk_rope_rows(float *x, int64_t ld, int64_t row0, int64_t row1, int64_t T, int64_t pos0,
                  int64_t nHeads, int64_t hd, const float *cosT, const float *sinT, int inverse);

/// Sum of squares in double; blocks of 1024 are summed in float first. Deterministic for a given n.
double qk_sum_squares(const float *x, int64_t n);

/// y[i] += x[i].
void qk_add(float *y, const float *x, int64_t n);

// MARK: - Quantization

/// Per-row int8 absmax fake-quantisation in place: x = clamp(rint(x * 127/amax), -128, 127) * amax/127.
void qk_act_quant_rows(float *x, int64_t rows, int64_t C, int64_t ld);

/// qk_act_quant_rows that also keeps what it computed: codes (rows x C, dense) and per-row
/// scales with x == codes * scales exactly (a row of zeros gets scale 0).
void qk_act_quant_rows_codes(float *x, int8_t *codes, float *scales, int64_t rows, int64_t C, int64_t ld);

/// BitNet b1.58 absmean ternarisation: out = clamp(rint(w / beta), -1, 1) * beta.
void qk_ternarize(float *out, const float *w, int64_t n, float beta);

/// Sum of |w| in double.
double qk_abs_sum(const float *w, int64_t n);


/// Unpack codes [start, start+count) into int8. `start` must be a multiple of 40.
void qk_unpack_i8(int8_t *out, const uint8_t *packed, int bits, int qn, int64_t start, int64_t count);

/// Pack int8 codes into elements [start, start+count). `start` must be a multiple of 40;
/// a partial final group is padded with qn.
void qk_pack_i8(uint8_t *packed, const int8_t *codes, int bits, int qn, int64_t start, int64_t count);

/// Dequantise codes [start, start+count) into out[i] = code * invScale. Any start.
void qk_dequant(float *out, const uint8_t *packed, int bits, int qn, int64_t start, int64_t count,
                float invScale);

/// BF16 ↔ FP32 (round to nearest even).
void qk_bf16_to_f32_array(float *out, const uint16_t *in, int64_t n);
void qk_f32_to_bf16_array(uint16_t *out, const float *in, int64_t n);

/// A 64-bit non-cryptographic hash of n bytes, chained from seed (replica fingerprints).
uint64_t qk_fingerprint(const void *data, int64_t n, uint64_t seed);

// MARK: - Random numbers and updates

/// Philox4x32-10 (Salmon et al., SC'11): one block of four 32-bit outputs.
void qk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/// Fills out[0..n) with normal(0, std) numbers: element i takes lane i%4 of the block with
/// counter (i/4 low, i/4 high, c2, c3) via Box-Muller. n and the results are chunk-independent.
void qk_philox_normal(float *out, int64_t start, int64_t n, const uint32_t key[2], uint32_t c2,
                      uint32_t c3, float std);

/// Uniform floats in [0, 1) with 24 bits, element i of the stream (c2, c3) under key.
void qk_philox_uniform(float *out, int64_t start, int64_t n, const uint32_t key[2], uint32_t c2,
                       uint32_t c3);

/// Stochastic rounding of in[0..n) to BF16: element i is stream element start+i, and rounds
/// up with probability (its low 16 bits) / 2^16, using the top 16 bits of the uniform of
/// qk_philox_uniform, so E[out] = in and the result does not depend on chunking. NaN stays NaN.
void qk_f32_to_bf16_stochastic(uint16_t *out, const float *in, int64_t start, int64_t n,
                               const uint32_t key[2], uint32_t c2, uint32_t c3);

/// AdamW hyper-parameters of one step.
typedef struct {
    float lr;         ///< learning rate of this step
    float beta1, beta2, eps;
    float weightDecay;
    float biasCorr1;  ///< 1 - beta1^t
    float biasCorr2;  ///< 1 - beta2^t
    float gradScale;  ///< multiplies every gradient first (clipping, 1/world)
} qk_adamw_params;

/// Dense AdamW on w[0..n).
void qk_adamw(float *w, const float *g, float *m, float *v, int64_t n, const qk_adamw_params *p);

/// Stochastic rounding of x to an integer in [qn, qp] with uniform u: floor(x) + (u < frac(x)).
static inline int qk_stochastic_round(float x, float u, int qn, int qp) {
    float c = x < (float)qn ? (float)qn : (x > (float)qp ? (float)qp : x);
    float f = __builtin_floorf(c);
    return (int)f + ((c - f) > u ? 1 : 0);
}

/// The fused DQT update of codes [start, start+count) (start a multiple of 40): reads code, g,
/// m, v (which point at element `start`); writes code, m, v. The proposal is taken on the old grid (scaleOld) and rounded onto
/// the new one (scaleNew; equal unless the rescale policy changed it). The uniform for element
/// i is lane i%4 of Philox(key, (i/4, 0, c2, c3)). Returns how many codes changed.
int64_t qk_dqt_update(uint8_t *packed, int bits, int qn, int qp, int64_t start, int64_t count,
                      const float *g, float *m, float *v, float scaleOld, float scaleNew,
                      const qk_adamw_params *p, const uint32_t key[2], uint32_t c2, uint32_t c3);

/// Largest code of codes [start, start+count) (for the rescale policy).
int qk_max_code(const uint8_t *packed, int bits, int qn, int64_t start, int64_t count);

// MARK: - Block-wise 8-bit optimizer state

/// Values per scale of the 8-bit moments.
#define QK_STATE8_BLOCK 2048
/// The value of each code byte, exact (at most 1.875): the signed map (first moment: an 8-bit
/// float with a sign, 4 exponent and 3 mantissa bits, 2^-17 .. 1.875) or the unsigned one
/// (second moment: 5 exponent bits, no sign, 2^-33 .. 1.875).
void qk_state8_table(int is_signed, float out[256]);
/// out[i] = table[codes[i]] * (scale / 1.875) with the scale of its block, for elements
/// first .. first+n-1 of a tensor whose blocks start at multiples of QK_STATE8_BLOCK;
/// scales[0] is the block of `first`.
void qk_state8_decode(float *out, const uint8_t *codes, const float *scales, int64_t n, int64_t first, int is_signed);
/// The inverse: each block (or the part of it in first .. first+n-1) takes its absmax as its
/// scale and each value the code of 1.875 * value / absmax, rounded to nearest (halves up), or
/// when `stochastic` with 16 random bits (unbiased to 2^-17 of a step): bits shift .. shift+15
/// of a counter hash of (seed, element first+i), so m and v can take the two halves of one
/// word per element, and the result does not depend on how a range is split into calls.
void qk_state8_encode(uint8_t *codes, float *scales, const float *in, int64_t n, int64_t first, int is_signed,
                      int stochastic, uint64_t seed, int shift);

// MARK: - Integer GEMM (oneDNN, loaded at run time)

/// Whether oneDNN's int8 GEMM can run here: the library loads and the CPU has AVX-512 VNNI
/// (QTRAIN_DISABLE_ONEDNN in the environment forces "no", to test the fallback).
int qk_int8_gemm_available(void);
/// Why not, or what runs.
const char *qk_int8_gemm_status(void);
/// Threads of oneDNN's OpenMP pool (applied when the library loads, if it is not loaded yet).
void qk_int8_gemm_set_threads(int n);
/// C (M x N, int32, row stride ldc) = A (M x K, int8, stride lda) times the transpose of
/// B (N x K, int8, stride ldb): exact. Returns 0, or oneDNN's status (-1: not available).
int qk_int8_gemm_nt(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda, const int8_t *B, int64_t ldb,
                    int32_t *C, int64_t ldc);

/// C (M x N, int32, row stride ldc) = (or += when accumulate) A (M x K, int8, stride lda) times
/// B (K x N, int8, stride ldb): exact while the sums fit in int32. Returns 0, or oneDNN's status.
int qk_int8_gemm_nn(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda, const int8_t *B, int64_t ldb,
                    int32_t *C, int64_t ldc, int accumulate);
/// amax[r] = max |in[r][c]| over c < cols (row stride ldi).
void qk_rows_absmax(float *amax, const float *in, int64_t ldi, int64_t rows, int64_t cols);
/// out[r][c] (row stride ldo) = in[r][c] * inverseSteps[r] rounded to an integer in [-127, 127]:
/// stochastic: up with probability of the fraction (24 random bits), drawn from a hash of
/// (seed, first + r * stride + c), so the result does not depend on how the caller splits rows;
/// otherwise to nearest. A NaN becomes a bound (the loss check reports it).
void qk_round_i8(int8_t *out, int64_t ldo, const float *in, int64_t ldi, int64_t rows, int64_t cols,
                 const float *inverseSteps, uint64_t seed, uint64_t first, int64_t stride, int stochastic);
/// out[r][j] (row stride ldo) = (or += when accumulate) c[r][j] * rowScales[r] * colScale.
void qk_rescale_i32(float *out, int64_t ldo, const int32_t *c, int64_t ldc, int64_t rows, int64_t cols,
                    const float *rowScales, float colScale, int accumulate);

/// BitNet's absmean ternary codes of FP32 latent weights (BF16 ones are widened first): clamp(rint(w / beta), -1, 1).
void qk_ternary_codes(int8_t *out, const float *w, int64_t n, float beta);

// MARK: - BF16 matmul (oneDNN, loaded at run time) and its operands

/// Whether oneDNN's BF16 matmul can run here: built with oneDNN's headers, the library loads
/// and the CPU has AVX-512 BF16 (QTRAIN_DISABLE_ONEDNN forces "no").
int qk_bf16_matmul_available(void);
/// Why not, or what runs.
const char *qk_bf16_matmul_status(void);
/// C (M x N, FP32, row stride ldc) = (or += when accumulate) A (M x K) times B (K x N), both
/// BF16 with element (i, j) at i * rs + j * cs, so either may be a transposed view. Products
/// accumulate in FP32. Returns 0, or a failure status (-1: not available).
int qk_bf16_matmul(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t a_rs, int64_t a_cs,
                   const uint16_t *B, int64_t b_rs, int64_t b_cs, float *C, int64_t ldc, int accumulate);

/// out[r][c] (row stride ldo) = BF16 of in[r][c] * rowScale[r] * scale (rowScale may be
/// NULL for 1). Stochastic: rounds up with probability (the dropped 16 bits) / 2^16,
/// drawn from a hash of (seed, first + r * stride + c), so the result does not depend on how
/// the caller splits rows; otherwise to nearest, ties to even. NaN stays NaN.
void qk_round_bf16(uint16_t *out, int64_t ldo, const float *in, int64_t ldi, int64_t rows, int64_t cols,
                   const float *rowScale, float scale, uint64_t seed, uint64_t first, int64_t stride,
                   int stochastic);
/// The int8 codes of rows already on the per-row absmax grid (values = codes * step, as
/// qk_act_quant_rows leaves them), recovered exactly and written as BF16, with each row's step.
void qk_act_codes_bf16(const float *x, int64_t ld, int64_t rows, int64_t C, uint16_t *out, int64_t ldo,
                       float *steps);
/// BF16 of small integers (exact).
void qk_i8_to_bf16(uint16_t *out, const int8_t *in, int64_t n);

/// x[i] += the BF16 value acc[i] (a BF16 gradient's running sum widened onto new FP32 terms).
void qk_bf16_widen_add(float *x, const uint16_t *acc, int64_t n);
/// inout[i] = BF16 of (inout[i] + in[i]), summed in FP32, rounded to nearest: the reduction of
/// BF16 gradient all-reduces (commutative, so every rank gets the same bits).
void qk_bf16_sum_into(uint16_t *inout, const uint16_t *in, int64_t n);
/// Sum of squares of BF16 values in double, in blocks of 1024 (fixed order).
double qk_sum_squares_bf16(const uint16_t *x, int64_t n);

// MARK: - Integer matrix-vector products (decoding)

/// y[r] = sum_k W[r][k] * x[k] for rows [0, rows) of W (row stride ldw), exact in int32. With
/// rowSums (sum_k W[r][k], from qk_int8_row_sums) it runs on AVX-512 VNNI where the CPU has it.
void qk_int8_gemv(int32_t *y, const int8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K,
                  const int32_t *rowSums);
void qk_int8_row_sums(int32_t *sums, const int8_t *W, int64_t ldw, int64_t rows, int64_t K);
/// Packs one row of K ternary codes (-1, 0, 1) at 2 bits for qk_ternary_gemv2: 16 bytes per
/// 64 codes (the last block zero-padded), byte j of a block holding codes 16t + j in bits 2t.
void qk_ternary_pack2(uint8_t *out, const int8_t *codes, int64_t K);
/// y[r] = sum_k code[r][k] * x[k] over 2-bit rows (stride ldw bytes), exact. x must hold
/// (K + 63) / 64 * 64 codes, zero past K.
void qk_ternary_gemv2(int32_t *y, const uint8_t *W, int64_t ldw, const int8_t *x, int64_t rows, int64_t K);
/// Whether qk_int8_gemv and qk_ternary_gemv2 have their VNNI paths here.
int qk_int8_gemv_uses_vnni(void);

// MARK: - Signals

/// Installs handlers so that SIGTERM and SIGUSR1 set a flag instead of killing the process.
void qk_install_stop_handlers(void);
/// The signal number received, or 0.
int qk_stop_requested(void);

// MARK: - CPU

/// Whether the CPU has AVX-512 F, BW, VL and DQ.
int qk_cpu_has_avx512(void);
/// Whether the CPU has AVX2 and FMA.
int qk_cpu_has_avx2(void);
/// Whether BF16 products run faster than FP32 ones on this CPU: AMD processors with AVX-512 BF16
/// (Zen 4 and later) and CPUs with AMX-BF16 tiles; not Intel's AVX-512 BF16 alone, whose dot
/// products reach only the FP32 FMA rate.
int qk_cpu_bf16_outpaces_fp32(void);

// MARK: - Decoding (prompt GEMMs, one-row attention, the decoding thread pool)

/// The int8 codes of `rows` rows of K ternary codes packed by qk_ternary_pack2 (row stride
/// ldw bytes) into rows of stride ldo, for an integer GEMM over a prompt's rows.
void qk_ternary_unpack2(int8_t *out, int64_t ldo, const uint8_t *W, int64_t ldw, int64_t rows, int64_t K);
/// Decoding one token's attention for one head: scores (S) = K q over S keys (row stride ld,
/// d wide), softmax(scale * scores) in place, out (d) = scores V over the values (stride ld).
void qk_attend_row(float *out, float *scores, const float *q, const float *k, const float *v, int64_t ld, int64_t S,
                   int64_t d, float scale);
/// One part of a pool job: part `part` of the job's parts.
typedef void (*qk_part_fn)(void *ctx, int64_t part);
/// Runs fn(ctx, 0 ..< parts) on the calling thread and the decoding pool's helpers (started at
/// the first call, `threads` - 1 of them; parts beyond the threads are not run, so ask
/// qk_pool_parts first). The helpers spin briefly between jobs, then sleep. One caller at a time.
void qk_pool_run(int64_t threads, int64_t parts, qk_part_fn fn, void *ctx);
/// How many parts a job may have: the helpers (started now if not yet) plus the caller.
int64_t qk_pool_parts(int64_t threads);

#ifdef __cplusplus
}
#endif
#endif

