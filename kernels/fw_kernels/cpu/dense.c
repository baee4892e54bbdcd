/* Dense bfloat16 matrix products for batches: x [M, K] @ W.T with W prepacked.
 *
 * Past a handful of rows a step is bound by arithmetic, not weight bytes, and the
 * AVX512-BF16 dot-product instruction (32 multiply-adds, float32 accumulation) is the
 * fastest arithmetic this CPU has for bf16 weights. W is packed in panels of 32 output
 * columns with input pairs interleaved ([ceil(N / 32)][K / 2][32][2], packing.py), so one
 * 64-byte load feeds 16 columns x 2 inputs; a tile of 8 input rows x 32 columns keeps its
 * 16 accumulators in registers while the panel streams from cache, and the first tile of
 * a panel prefetches the next one (weights come from memory, not cache, in a real step).
 * Threads split the panels.
 */
#include "fw_cpu.h"

#if defined(__AVX512BF16__)
#define PANEL 32
#define TILE_ROWS 8

static inline __attribute__((always_inline)) void dense_tile(const int R, const uint16_t *x, int64_t x_stride,
                                                             const uint16_t *panel, int64_t K, void *out,
                                                             int64_t N, int64_t n0, const uint16_t *bias,
                                                             const uint16_t *next, int64_t float_out) {
    __m512 acc[TILE_ROWS][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t kp = 0; kp < K / 2; kp++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + kp * 64);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + kp * 64 + 32);
        if (next) {  /* the next panel, into L2 while this one computes */
            _mm_prefetch((const char *)(next + kp * 64), _MM_HINT_T1);
            _mm_prefetch((const char *)(next + kp * 64 + 32), _MM_HINT_T1);
        }
        for (int r = 0; r < R; r++) {
            int32_t pair;
            memcpy(&pair, x + r * x_stride + 2 * kp, sizeof(pair));
            __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
    }
    const fw_columns32 columns = fw_columns32_at(bias, N, n0);
    for (int r = 0; r < R; r++) fw_columns32_store(&columns, out, r, N, n0, float_out, acc[r][0], acc[r][1]);
}

#define TILE_CALL(R_)                                                                              \
    dense_tile(R_, x + m0 * x_stride, x_stride, panel, K,                                          \
               float_out ? (void *)((float *)out + m0 * N) : (void *)((uint16_t *)out + m0 * N), N,  \
               p * PANEL, bias, m0 == 0 && p + 1 < count ? panel + (K / 2) * PANEL * 2 : NULL, float_out)

/* out [M, N] = x [M, K] (row stride x_stride, even) @ W.T (+ bias); K even. out is bf16,
 * or float32 with float_out (an LM head's logits keep their float32 sums). */
void fw_dense_gemm_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint16_t *panels,
                        const uint16_t *bias, int64_t M, int64_t N, int64_t K, int64_t float_out) {
    const int64_t count = (N + PANEL - 1) / PANEL;
    _Pragma("omp parallel for if (M * N * K >= 262144) schedule(static)")
    for (int64_t p = 0; p < count; p++) {
        const uint16_t *panel = panels + p * (K / 2) * PANEL * 2;
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

int fw_dense_available(void) { return 1; }
#else
void fw_dense_gemm_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint16_t *panels,
                        const uint16_t *bias, int64_t M, int64_t N, int64_t K, int64_t float_out) {
    (void)out; (void)x; (void)x_stride; (void)panels; (void)bias; (void)M; (void)N; (void)K; (void)float_out;
    abort();  /* callers check fw_dense_available() first */
}

int fw_dense_available(void) { return 0; }
#endif
