/* The quantized block layout (packing.py's pack_int4 / pack_int8) and the tiles that
 * multiply by it: shared by gemv.c (the driver), blocks_vnni.c (int8 dot products) and
 * blocks_float.c (float32 activations).
 *
 * Per output row and group of 32 inputs, unsigned levels u with a float16 scale and
 * minimum, w = u * scale + min (GGUF's Q4_1; Q8_0 as u = q + 128, min = -128 * scale).
 * Blocks of 16 output rows, group by group: the levels as [slots][16 rows][4 bytes]
 * (slot j: bytes 4j..4j+3 of each row's group; int4 has 4 slots, its low nibbles are
 * elements 4j..4j+3 and its high nibbles 16+4j..16+4j+3; int8 has 8, elements 4j..4j+3),
 * then the 16 scales and the 16 minimums. So one 64-byte load holds 16 output rows, one
 * per 32-bit lane, as vpdpbusd wants them against 4 broadcast bytes of an input row, and
 * every sum of a (weight row, input row) pair stays in its own lane: no horizontal sums.
 *
 * The canonical arithmetic of output (row m, weight row n), the same for any number of
 * rows in the call, so a row's result never depends on its neighbours:
 *   int8 activations: x quantized per group of 32 (dx = max|x| / 127, xsum = the group's
 *     float sum); per group in order, idot = the exact integer dot of levels and x,
 *     acc = fma(float(idot), scale * dx, acc); acc = fma(min, xsum, acc).
 *   float activations: per group in order, a = sum of level * x over elements 0..15,
 *     b = over 16..31 (fused multiply-adds in element order), acc = fma(a + b, scale, acc);
 *     acc = fma(min, xsum, acc).
 */
#ifndef FW_BLOCKS_H
#define FW_BLOCKS_H

#include "fw_cpu.h"

#define BLOCK_ROWS 16
#define BLOCK_GROUP 32

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define FW_BLOCKS_VNNI 1
#else
#define FW_BLOCKS_VNNI 0
#endif

/* A packed matrix: its level bits (4 or 8), input size and stored tensors. */
typedef struct {
    int bits;
    int64_t K;
    const uint8_t *q;
    const uint16_t *params;
} blocks_weights;

/* Activations as the tiles read them, [M] rows: int8 levels (q, [M][K]), their group
 * scales (scale) and the groups' float sums (sum, [M][K / 32]); or float32 rows (x). */
typedef struct {
    const int8_t *q;
    const float *x, *scale, *sum;
} blocks_rows;

/* Where results go: out [M, N], float32 when float_out or when the kernel's type is
 * float32 (bf16 == 0), else bfloat16; bias of the kernel's type, or NULL. */
typedef struct {
    void *out;
    const void *bias;
    int64_t N;
    int float_out, bf16;
} blocks_out;

/* A thread's share of a prefetch plan (fw_cpu.h): regions [region, end), the current one
 * at `at` with `left` bytes to go; `per_group` cache lines go with each group a tile
 * computes, so the lines arrive spread over the work, not in one burst. */
typedef struct {
    const fw_prefetch_plan *plan;
    const char *at;
    int64_t left, region, end, per_group;
} blocks_prefetch;

static inline void blocks_prefetch_lines(blocks_prefetch *c) {
    for (int64_t i = 0; i < c->per_group; i++) {
        if (c->left <= 0) {
            if (c->region >= c->end) return;
            const int64_t r = c->region++, at = r % c->plan->count;
            c->at = c->plan->base[r / c->plan->count] + c->plan->start[at];
            c->left = c->plan->bytes[at];
        }
        __builtin_prefetch(c->at, 0, 2);  /* into L2, as _MM_HINT_T1 */
        c->at += 64;
        c->left -= 64;
    }
}

static inline int64_t blocks_group_bytes(int bits) { return (int64_t)bits * BLOCK_ROWS * BLOCK_GROUP / 8; }

#if defined(__AVX512F__)
/* 16 float32 to bfloat16, rounded exactly as bf16_store does (to nearest even; a NaN stays
 * a NaN), whatever the CPU's bf16 support. */
static inline __m256i blocks_bf16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

/* Output row `row`, columns n0..n0+15 (those below N) = v + bias. */
static inline void blocks_store(const blocks_out *o, int64_t row, int64_t n0, __m512 v) {
    const int64_t width = o->N - n0;
    const __mmask16 mask = width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1);
    if (o->bias) {
        const __m512 b = o->bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
                                       _mm256_maskz_loadu_epi16(mask, (const uint16_t *)o->bias + n0)), 16))
                                 : _mm512_maskz_loadu_ps(mask, (const float *)o->bias + n0);
        v = _mm512_add_ps(v, b);
    }
    if (o->float_out || !o->bf16)
        _mm512_mask_storeu_ps((float *)o->out + row * o->N + n0, mask, v);
    else
        _mm256_mask_storeu_epi16((uint16_t *)o->out + row * o->N + n0, mask, blocks_bf16(v));
}
#endif

/* Output row `row`, column n = value + bias, one at a time (the plain C paths). */
static inline void blocks_store_one(const blocks_out *o, int64_t row, int64_t n, float value) {
    if (o->bias) value += o->bf16 ? bf16_load(((const uint16_t *)o->bias)[n]) : ((const float *)o->bias)[n];
    if (o->float_out || !o->bf16) ((float *)o->out)[row * o->N + n] = value;
    else ((uint16_t *)o->out)[row * o->N + n] = bf16_store(value);
}

/* The most input rows and 16-row blocks one tile of each kind takes. */
#define VNNI_TILE_ROWS 6
#define VNNI_TILE_BLOCKS 2
#define VNNI_ONE_ROW_BLOCKS 4
#define FLOAT_TILE_ROWS 4

/* blocks_vnni.c: one row of x (bf16, K inputs) -> its int8 levels, group scales and sums. */
void fw_blocks_quantize(const uint16_t *x, int64_t K, int8_t *q, float *scale, float *sum);
/* Output rows row..row+R-1 (R <= VNNI_TILE_ROWS, or 1) x columns of blocks block..block+V-1
 * (V <= VNNI_TILE_BLOCKS, or VNNI_ONE_ROW_BLOCKS for one row); with `prefetch`, the next V
 * blocks are brought into L2 meanwhile, and `side`'s lines (or NULL). */
void fw_blocks_vnni_tile(const blocks_weights *w, const blocks_rows *x, int R, int V, int64_t block, int64_t row,
                         const blocks_out *o, int prefetch, blocks_prefetch *side);
/* blocks_float.c: the same from float32 rows (R <= FLOAT_TILE_ROWS, one block). */
void fw_blocks_float_tile(const blocks_weights *w, const blocks_rows *x, int R, int64_t block, int64_t row,
                          const blocks_out *o);

#endif
