/* int8 matrix products for batches (W8A8): x [M, K] bf16 @ W.T with W in 8 bits.
 *
 * Past a handful of rows a step is bound by arithmetic. vpdpbusd (AVX512-VNNI) does 64
 * int8 multiply-adds per instruction at the rate vdpbf16ps does 32 bf16 ones, so int8
 * operands double the arithmetic a core can do. W is quantized once per output column
 * (symmetric, scale max|w| / 127, stored as q + 128 because vpdpbusd multiplies unsigned
 * by signed bytes); x is quantized on the fly per row and per group of ACT_GROUP inputs
 * (scale max|x| / 127), as llama.cpp's batched int8 paths do. Each group's exact int32 dot
 * product is scaled into a float32 sum in a fixed order, so a row's result never depends
 * on the rows beside it.
 *
 * Per group, sum_k (q_w + 128) q_x = sum_k q_w q_x + 128 sum_k q_x: the second term only
 * depends on the row, so it is subtracted once at the end (`bias_of_row`).
 *
 * Layout (packing.pack_int8_panels): panels of 32 output columns, [ceil(N / 32)][K / 4]
 * [32][4] bytes, so one 64-byte load holds 16 columns x 4 inputs; a tile of TILE_ROWS
 * rows x 32 columns keeps its int32 and float32 sums in registers, and the first tile of
 * a panel prefetches the next one (in a real step weights come from memory: 1.4x at 32
 * rows). Threads split the panels; large M is cut into row blocks whose quantized rows
 * stay in cache.
 *
 * Being bound by arithmetic, it has memory bandwidth to spare: given a prefetch plan, each
 * panel brings its share of the plan's regions into L2, a cache line per step of its
 * inner loop (decoder.c hands it the KV blocks that the next attention will read).
 */
#include "fw_cpu.h"

#define ACT_GROUP 32
#define PANEL 32
#define TILE_ROWS 6
#define ROW_BLOCK 192

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512BF16__)

/* One row of x (bf16) -> int8 per group (xq), each group's scale (dx), and the row's
 * 128 * sum(dx * sum q) (bias_of_row). */
static void quantize_row(const uint16_t *x, int64_t K, int8_t *xq, float *dx, float *bias_of_row) {
    float offset = 0.0f;
    for (int64_t g = 0; g < K / ACT_GROUP; g++) {
        __m512 v[ACT_GROUP / 16];
        __m512 top = _mm512_setzero_ps();
        for (int h = 0; h < ACT_GROUP / 16; h++) {
            v[h] = fw_widen_bf16(x + g * ACT_GROUP + h * 16);
            top = _mm512_max_ps(top, _mm512_abs_ps(v[h]));
        }
        const float t = _mm512_reduce_max_ps(top);
        const __m512 inv = _mm512_set1_ps(t > 0.0f ? 127.0f / t : 0.0f);
        __m512i total = _mm512_setzero_si512();
        for (int h = 0; h < ACT_GROUP / 16; h++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v[h], inv));
            total = _mm512_add_epi32(total, q);
            _mm_storeu_si128((__m128i *)(xq + g * ACT_GROUP + h * 16), _mm512_cvtsepi32_epi8(q));
        }
        dx[g] = t / 127.0f;
        offset += dx[g] * (float)_mm512_reduce_add_epi32(total);
    }
    *bias_of_row = 128.0f * offset;
}

/* A panel's share of a prefetch plan, a cache line per call, into L2. */
typedef struct { const fw_prefetch_plan *plan; const char *at; int64_t left, region, end; } prefetch_cursor;

static inline void prefetch_line(prefetch_cursor *c) {
    if (c->left <= 0) {
        if (c->region >= c->end) return;
        const int64_t i = c->region++, at = i % c->plan->count;
        c->at = c->plan->base[i / c->plan->count] + c->plan->start[at];
        c->left = c->plan->bytes[at];
    }
    _mm_prefetch(c->at, _MM_HINT_T1);
    c->at += 64;
    c->left -= 64;
}

static inline __attribute__((always_inline)) void int8_tile(const int R, const int8_t *xq, const float *dx,
                                                            const float *row_bias, const uint8_t *panel,
                                                            const float *scale, const uint16_t *bias, int64_t K,
                                                            void *out, int64_t N, int64_t n0,
                                                            const uint8_t *next, prefetch_cursor *side,
                                                            int64_t float_out) {
    const int64_t groups = K / ACT_GROUP;
    __m512 acc[TILE_ROWS][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        __m512i dot[TILE_ROWS][2];
        for (int r = 0; r < R; r++) dot[r][0] = dot[r][1] = _mm512_setzero_si512();
        const uint8_t *w = panel + g * ACT_GROUP * PANEL;
        const int8_t *xg = xq + g * ACT_GROUP;
#pragma GCC unroll 8
        for (int kq = 0; kq < ACT_GROUP / 4; kq++) {
            const __m512i w0 = _mm512_loadu_si512(w + kq * 128), w1 = _mm512_loadu_si512(w + kq * 128 + 64);
            if (side) prefetch_line(side);
            if (next) {  /* the next panel, into L2 while this one computes */
                _mm_prefetch((const char *)(next + g * ACT_GROUP * PANEL + kq * 128), _MM_HINT_T1);
                _mm_prefetch((const char *)(next + g * ACT_GROUP * PANEL + kq * 128 + 64), _MM_HINT_T1);
            }
            for (int r = 0; r < R; r++) {
                int32_t quad;
                memcpy(&quad, xg + r * K + kq * 4, sizeof(quad));
                const __m512i b = _mm512_set1_epi32(quad);
                dot[r][0] = _mm512_dpbusd_epi32(dot[r][0], w0, b);
                dot[r][1] = _mm512_dpbusd_epi32(dot[r][1], w1, b);
            }
        }
        for (int r = 0; r < R; r++) {
            const __m512 d = _mm512_set1_ps(dx[r * groups + g]);
            acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][0]), d, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][1]), d, acc[r][1]);
        }
    }
    const fw_columns32 columns = fw_columns32_at(bias, N, n0);
    const __m512 s_lo = _mm512_loadu_ps(scale + n0), s_hi = _mm512_loadu_ps(scale + n0 + 16);
    for (int r = 0; r < R; r++) {
        const __m512 offset = _mm512_set1_ps(row_bias[r]);
        fw_columns32_store(&columns, out, r, N, n0, float_out, _mm512_mul_ps(_mm512_sub_ps(acc[r][0], offset), s_lo),
                           _mm512_mul_ps(_mm512_sub_ps(acc[r][1], offset), s_hi));
    }
}

#define TILE_CALL(R_)                                                                              \
    int8_tile(R_, xq + m * K, dx + m * groups, row_bias + m, panel, scales, bias, K,               \
              float_out ? (void *)((float *)out + m * N) : (void *)((uint16_t *)out + m * N), N,    \
              p * PANEL, m == m0 && p + 1 < count ? panel + K * PANEL : NULL, side, float_out)

/* out [M, N] = x [M, K] (row stride x_stride) @ W.T (+ bias) for W packed by
 * pack_int8_panels with its per-column scales; K a multiple of ACT_GROUP. out is bf16, or
 * float32 with float_out (an LM head's logits keep their float32 sums). */
void fw_int8_gemm_prefetching_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint8_t *panels,
                                   const float *scales, const uint16_t *bias, int64_t M, int64_t N, int64_t K,
                                   int64_t float_out, const fw_prefetch_plan *plan) {
    const int64_t groups = K / ACT_GROUP, count = (N + PANEL - 1) / PANEL;
    int8_t *xq = fw_scratch(sizeof(int8_t) * (size_t)(M * K));
    float *dx = fw_scratch(sizeof(float) * (size_t)(M * groups + M)), *row_bias = dx + M * groups;
    _Pragma("omp parallel if (M * N * K >= 262144)")
    {
        _Pragma("omp for schedule(static)")
        for (int64_t m = 0; m < M; m++)
            quantize_row(x + m * x_stride, K, xq + m * K, dx + m * groups, row_bias + m);
        for (int64_t m0 = 0; m0 < M; m0 += ROW_BLOCK) {
            const int64_t m1 = M - m0 < ROW_BLOCK ? M : m0 + ROW_BLOCK;
            _Pragma("omp for schedule(static)")
            for (int64_t p = 0; p < count; p++) {
                const uint8_t *panel = panels + p * K * PANEL;
                prefetch_cursor cursor = {plan, NULL, 0, 0, 0}, *side = NULL;
                if (plan && m0 == 0) {  /* each panel its share of the regions */
                    const int64_t share = plan->to - plan->from;
                    cursor.region = plan->from + p * share / count;
                    cursor.end = plan->from + (p + 1) * share / count;
                    side = &cursor;
                }
                for (int64_t m = m0; m < m1; m += TILE_ROWS) {
                    switch (m1 - m) {
                    case 1: TILE_CALL(1); break;
                    case 2: TILE_CALL(2); break;
                    case 3: TILE_CALL(3); break;
                    case 4: TILE_CALL(4); break;
                    case 5: TILE_CALL(5); break;
                    default: TILE_CALL(6); break;
                    }
                }
            }
        }
    }
    free(xq);
    free(dx);
}

void fw_int8_gemm_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint8_t *panels,
                       const float *scales, const uint16_t *bias, int64_t M, int64_t N, int64_t K,
                       int64_t float_out) {
    fw_int8_gemm_prefetching_bf16(out, x, x_stride, panels, scales, bias, M, N, K, float_out, NULL);
}

int fw_int8_gemm_available(void) { return 1; }
#else
void fw_int8_gemm_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint8_t *panels,
                       const float *scales, const uint16_t *bias, int64_t M, int64_t N, int64_t K,
                       int64_t float_out) {
    (void)out; (void)x; (void)x_stride; (void)panels; (void)scales; (void)bias; (void)M; (void)N; (void)K;
    (void)float_out;
    abort();  /* callers check fw_int8_gemm_available() first */
}

void fw_int8_gemm_prefetching_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint8_t *panels,
                                   const float *scales, const uint16_t *bias, int64_t M, int64_t N, int64_t K,
                                   int64_t float_out, const fw_prefetch_plan *plan) {
    (void)plan;
    fw_int8_gemm_bf16(out, x, x_stride, panels, scales, bias, M, N, K, float_out);
}

int fw_int8_gemm_available(void) { return 0; }
#endif
