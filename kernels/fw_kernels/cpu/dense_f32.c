/* Dense float32 matrix products whose every output is summed in one fixed order.
 *
 * torch's float32 linear (MKL's sgemm, or oneDNN's) picks its kernel and its blocking of
 * the inner dimension by the number of rows: row 0 of a 1-row product and of a 2-row
 * product differ in their last bits, and greedy decoding in float32 then answered a prompt
 * differently alone, in a batch or after a prefix-cache hit. Here each output element
 * out[m][n] is one accumulator that adds x[m][k] * W[n][k] for k = 0, 1, ..., K - 1 with
 * a fused multiply-add, whatever M is, whichever tile or thread computes it.
 *
 * W is packed in panels of 32 output columns ([ceil(N / 32)][K][32], packing.py), so one
 * 64-byte load feeds 16 columns; a tile of 8 input rows x 32 columns keeps its 16
 * accumulators in registers while the panel streams from cache. Threads split the panels.
 */
#include "fw_cpu.h"

#define PANEL 32
#define TILE_ROWS 8

#if defined(__AVX512F__)
static inline __attribute__((always_inline)) void dense_tile_f32(const int R, const float *x, int64_t x_stride,
                                                                 const float *panel, int64_t K, float *out,
                                                                 int64_t N, int64_t n0, const float *bias) {
    __m512 acc[TILE_ROWS][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const __m512 b0 = _mm512_loadu_ps(panel + k * PANEL), b1 = _mm512_loadu_ps(panel + k * PANEL + 16);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(x[r * x_stride + k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    const int64_t width = N - n0 < PANEL ? N - n0 : PANEL;
    const __mmask16 lo = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
    const __mmask16 hi = width >= 32 ? 0xFFFF : (width <= 16 ? 0 : (__mmask16)((1u << (width - 16)) - 1));
    __m512 bias_lo = _mm512_setzero_ps(), bias_hi = _mm512_setzero_ps();
    if (bias) {
        bias_lo = _mm512_maskz_loadu_ps(lo, bias + n0);
        bias_hi = _mm512_maskz_loadu_ps(hi, bias + n0 + 16);
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(out + r * N + n0, lo, _mm512_add_ps(acc[r][0], bias_lo));
        _mm512_mask_storeu_ps(out + r * N + n0 + 16, hi, _mm512_add_ps(acc[r][1], bias_hi));
    }
}

#define TILE_CALL(R_) dense_tile_f32(R_, x + m0 * x_stride, x_stride, panel, K, out + m0 * N, N, p * PANEL, bias)
#else
/* Without AVX-512: the same order, one element at a time. */
static void dense_tile_plain(int64_t R, const float *x, int64_t x_stride, const float *panel, int64_t K,
                             float *out, int64_t N, int64_t n0, const float *bias) {
    const int64_t width = N - n0 < PANEL ? N - n0 : PANEL;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < width; c++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++) sum = fmaf(x[r * x_stride + k], panel[k * PANEL + c], sum);
            out[r * N + n0 + c] = sum + (bias ? bias[n0 + c] : 0.0f);
        }
}

#define TILE_CALL(R_) dense_tile_plain(R_, x + m0 * x_stride, x_stride, panel, K, out + m0 * N, N, p * PANEL, bias)
#endif

/* out [M, N] = x [M, K] (row stride x_stride) @ W.T (+ bias), all float32. The last two
 * arguments match fw_dense_gemm_bf16's; the output is float32 either way. */
void fw_dense_gemm_f32(float *out, const float *x, int64_t x_stride, const float *panels, const float *bias,
                       int64_t M, int64_t N, int64_t K, int64_t float_out) {
    (void)float_out;
    const int64_t count = (N + PANEL - 1) / PANEL;
    _Pragma("omp parallel for if (M * N * K >= 262144) schedule(static)")
    for (int64_t p = 0; p < count; p++) {
        const float *panel = panels + p * K * PANEL;
        for (int64_t m0 = 0; m0 < M; m0 += TILE_ROWS) {
            switch (M - m0) {
            case 1: TILE_CALL(1); break;
            case 2: TILE_CALL(2); break;
            case 3: TILE_CALL(3); break;
            case 4: TILE_CALL(4); break;
            case 5: TILE_CALL(5); break;
            case 6: TILE_CALL(6); break;
            case 7: TILE_CALL(7); break;
            default: TILE_CALL(8); break;
            }
        }
    }
}
