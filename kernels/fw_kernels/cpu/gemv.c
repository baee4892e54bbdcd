/* Weight-only quantized matrix products over the block layout (blocks.h): int4 (GGUF's
 * Q4_1 levels) and 8-bit (Q8_0) weights, for any number of input rows, with one
 * arithmetic per (input row, weight row) pair whatever the number of rows, so a token's
 * result does not depend on the step it shares (batch-invariant numerics).
 *
 * Two ways to multiply, picked by the activations' type and the CPU, never by the rows:
 *   int8 dot products (AVX512-VNNI, bfloat16 inputs): x quantized per group of 32 to int8
 *     with its own scale, as llama.cpp does for these formats; bfloat16 activations carry
 *     ~0.4% error already and this adds about as much (blocks_vnni.c);
 *   float: x in float32, each level converted to float (exact products; blocks_float.c).
 *
 * One row (a decode step at concurrency 1) is bound by the bytes of weight it reads:
 * tiles of 4 blocks (64 weight rows) keep 4 streams of loads in flight. More rows are
 * bound by arithmetic: tiles of up to 6 input rows x 2 blocks reuse each unpacked vector of
 * levels for 6 rows and each broadcast of x for 32 weight rows. Each thread takes a
 * contiguous share of the blocks and passes over each tile of them (in L1) with every
 * input row of a row block (in L2), so a prompt reads its weights from memory about once
 * per ROW_BLOCK rows; the first pass over a tile prefetches the next one into L2 (2x at
 * one row, 1.1x at 32, with weights streaming from memory as in a real step).
 */
#include <omp.h>

#include "blocks.h"

/* input rows whose activations stay in L2 while each tile of weights passes over them */
#define ROW_BLOCK 120

/* Each thread's share of the output: blocks [b0, b1), every row. */
static void run_tiles(const blocks_weights *w, const blocks_rows *x, const blocks_out *o, int vnni, int64_t M,
                      int64_t b0, int64_t b1, blocks_prefetch *side) {
    const int rows = vnni ? VNNI_TILE_ROWS : FLOAT_TILE_ROWS;
    const int width = !vnni ? 1 : (M == 1 ? VNNI_ONE_ROW_BLOCKS : VNNI_TILE_BLOCKS);
    for (int64_t m0 = 0; m0 < M; m0 += ROW_BLOCK) {
        const int64_t m1 = M - m0 < ROW_BLOCK ? M : m0 + ROW_BLOCK;
        for (int64_t b = b0; b < b1; b += width) {
            const int V = b1 - b < width ? (int)(b1 - b) : width;
            /* the row block in tiles of nearly equal size (32 rows: 5 or 6 each) */
            const int64_t tiles = (m1 - m0 + rows - 1) / rows;
            for (int64_t t = 0, m = m0; t < tiles; t++) {
                const int R = (int)((m1 - m0) * (t + 1) / tiles - (m1 - m0) * t / tiles);
                if (vnni) fw_blocks_vnni_tile(w, x, R, V, b, m, o, t == 0 && b + 2 * V <= b1, t == 0 ? side : NULL);
                else fw_blocks_float_tile(w, x, R, b, m, o);
                m += R;
            }
        }
    }
}

/* This thread's share of `plan` (regions split evenly by thread), spread over the groups
 * of the first pass over its tiles; NULL without a plan or without the VNNI tiles. */
static blocks_prefetch *plan_share(const fw_prefetch_plan *plan, blocks_prefetch *c, int vnni, int64_t M,
                                   int64_t groups, int64_t blocks, int64_t me, int64_t threads) {
    if (!plan || !vnni || plan->count == 0 || blocks == 0) return NULL;
    const int64_t share = plan->to - plan->from, width = M == 1 ? VNNI_ONE_ROW_BLOCKS : VNNI_TILE_BLOCKS;
    c->plan = plan;
    c->at = NULL;
    c->left = 0;
    c->region = plan->from + share * me / threads;
    c->end = plan->from + share * (me + 1) / threads;
    int64_t lines = 0;
    for (int64_t r = c->region; r < c->end; r++) lines += (plan->bytes[r % plan->count] + 63) / 64;
    const int64_t steps = ((blocks + width - 1) / width) * groups;  /* tiles of the first pass x groups */
    c->per_group = (lines + steps - 1) / steps;
    return c;
}

/* float32 rows and their groups' sums (the float path): summed 16 lanes at a time then
 * across, in one fixed order. */
static void float_row(const float *xf, int64_t K, float *sum) {
    for (int64_t g = 0; g < K / BLOCK_GROUP; g++) {
        float lanes[FW_LANES] = {0};
        for (int h = 0; h < BLOCK_GROUP; h += FW_LANES)
            for (int l = 0; l < FW_LANES; l++) lanes[l] += xf[g * BLOCK_GROUP + h + l];
        sum[g] = fw_lanes_sum(lanes);
    }
}

/* out [M, N] = x [M, K] (row stride x_stride) @ W.T (+ bias) for W in the block layout of
 * `bits`; K a multiple of 32, any M. VNNI: whether to quantize x and use int8 dot products
 * (bfloat16 inputs on a CPU that has them). */
#define DEFINE_GEMV(SUFFIX, T, IS_BF16, VNNI)                                                      \
static void gemv_##SUFFIX(const int bits, T *out, const T *x, int64_t x_stride, const uint8_t *q,  \
                          const uint16_t *params, const T *bias, int64_t M, int64_t N, int64_t K,  \
                          int64_t float_out, const fw_prefetch_plan *plan) {                       \
    const int64_t groups = K / BLOCK_GROUP, blocks = (N + BLOCK_ROWS - 1) / BLOCK_ROWS;           \
    const blocks_weights w = {bits, K, q, params};                                                 \
    const blocks_out o = {out, bias, N, (int)float_out, IS_BF16};                                  \
    char *scratch = fw_scratch((size_t)M * (size_t)K * ((VNNI) ? 1 : sizeof(float))              \
                               + 2 * sizeof(float) * (size_t)(M * groups));                        \
    float *sums = (float *)scratch, *scales = sums + M * groups;                                   \
    blocks_rows rows = {NULL, NULL, scales, sums};                                                 \
    if (VNNI) rows.q = (const int8_t *)(scales + M * groups);                                      \
    else rows.x = scales + M * groups;                                                             \
    _Pragma("omp parallel if (M * N * K >= 65536)")                                                \
    {                                                                                              \
        _Pragma("omp for schedule(static)")                                                        \
        for (int64_t m = 0; m < M; m++) {                                                          \
            if (VNNI) {                                                                            \
                fw_blocks_quantize((const uint16_t *)(const void *)(x + m * x_stride), K,          \
                                   (int8_t *)rows.q + m * K, scales + m * groups, sums + m * groups); \
            } else {                                                                               \
                row_##SUFFIX((float *)rows.x + m * K, x + m * x_stride, K);                        \
                float_row(rows.x + m * K, K, sums + m * groups);                                   \
            }                                                                                      \
        }                                                                                          \
        const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();                 \
        const int64_t b0 = blocks * me / threads, b1 = blocks * (me + 1) / threads;                \
        blocks_prefetch cursor;                                                                    \
        run_tiles(&w, &rows, &o, VNNI, M, b0, b1,                                                  \
                  plan_share(plan, &cursor, VNNI, M, groups, b1 - b0, me, threads));               \
    }                                                                                              \
    free(scratch);                                                                                 \
}                                                                                                  \
                                                                                                   \
/* float_out: out is float32 [M, N] (an LM head's logits, a tensor-parallel shard's partial  \
 * sums keep their float32 sums). */                                                              \
void fw_int4_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q, const uint16_t *params, \
                           const T *bias, int64_t M, int64_t N, int64_t K, int64_t float_out) {    \
    gemv_##SUFFIX(4, out, x, x_stride, q, params, bias, M, N, K, float_out, NULL);                 \
}                                                                                                  \
                                                                                                   \
void fw_int8_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q, const uint16_t *params, \
                           const T *bias, int64_t M, int64_t N, int64_t K, int64_t float_out) {    \
    gemv_##SUFFIX(8, out, x, x_stride, q, params, bias, M, N, K, float_out, NULL);                 \
}                                                                                                  \
                                                                                                   \
/* The same (bits 4 or 8), prefetching `plan`'s regions (NULL: none) into L2 a few lines per \
 * group of the tiles' first pass: the fused decoder hands it the KV blocks that the next   \
 * attention reads, which a step's arithmetic-bound projections have bandwidth to spare for. */ \
void fw_blocks_gemv_prefetching_##SUFFIX(int64_t bits, T *out, const T *x, int64_t x_stride, const uint8_t *q, \
                                         const uint16_t *params, const T *bias, int64_t M, int64_t N, \
                                         int64_t K, int64_t float_out, const fw_prefetch_plan *plan) { \
    gemv_##SUFFIX((int)bits, out, x, x_stride, q, params, bias, M, N, K, float_out, plan);         \
}

DEFINE_GEMV(f32, float, 0, 0)
DEFINE_GEMV(bf16, uint16_t, 1, FW_BLOCKS_VNNI)

/* For the Python side's check that both agree on the limit. */
int64_t fw_max_gemv_rows(void) { return MAX_GEMV_ROWS; }
