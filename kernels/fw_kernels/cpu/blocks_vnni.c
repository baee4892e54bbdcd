/* The block layout's tiles with int8 activations (AVX512-VNNI): bfloat16 rows quantized
 * per group of 32 (as llama.cpp does for these formats), multiplied with the levels by
 * vpdpbusd, 64 multiply-adds per instruction.
 *
 * A vector of levels holds 4 consecutive levels of each of 16 weight rows, so per group,
 * 16 weight rows and one input row it takes 8 vpdpbusd (each against 4 broadcast bytes of
 * x) into an integer sum, then one conversion, a multiply by scale * dx and two fused
 * multiply-adds: the float work is amortized over 16 x 32 multiply-adds. A tile keeps
 * R input rows x V blocks of sums in registers, so each unpacked vector of levels serves
 * R rows and each broadcast of x serves V blocks. Integer sums are exact in any order,
 * so the tile's shape never changes a result (blocks.h states the arithmetic).
 */
#include "blocks.h"

#if FW_BLOCKS_VNNI

void fw_blocks_quantize(const uint16_t *x, int64_t K, int8_t *q, float *scale, float *sum) {
    for (int64_t g = 0; g < K / BLOCK_GROUP; g++) {
        const __m512 a = fw_widen_bf16(x + g * BLOCK_GROUP), b = fw_widen_bf16(x + g * BLOCK_GROUP + 16);
        const float top = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
        const __m512 inv = _mm512_set1_ps(top > 0.0f ? 127.0f / top : 0.0f);
        _mm_storeu_si128((__m128i *)(q + g * BLOCK_GROUP), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, inv))));
        _mm_storeu_si128((__m128i *)(q + g * BLOCK_GROUP + 16),
                         _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(b, inv))));
        scale[g] = top / 127.0f;
        sum[g] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

/* acc + the dot products of w's unsigned bytes with the 4 signed bytes at x (in every lane). */
static inline __attribute__((always_inline)) __m512i dot4(__m512i acc, __m512i w, const int8_t *x) {
    int32_t quad;
    memcpy(&quad, x, sizeof(quad));
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(quad));
}

static inline __attribute__((always_inline)) void tile(const int BITS, const int R, const int V,
                                                       const blocks_weights *w, const blocks_rows *x,
                                                       int64_t block, int64_t row, const blocks_out *o,
                                                       int prefetch, blocks_prefetch *side) {
    const int64_t K = w->K, groups = K / BLOCK_GROUP, group_bytes = blocks_group_bytes(BITS);
    const int64_t block_bytes = groups * group_bytes, block_params = groups * 2 * BLOCK_ROWS;
    const uint8_t *q = w->q + block * block_bytes;
    const uint16_t *p = w->params + block * block_params;
    const int8_t *xq = x->q + row * K;
    const float *dx = x->scale + row * groups, *xsum = x->sum + row * groups;
    const __m512i nibble = _mm512_set1_epi8(15);
    __m512 acc[VNNI_TILE_ROWS][VNNI_ONE_ROW_BLOCKS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *qg = q + g * group_bytes;
        const int8_t *xg = xq + g * BLOCK_GROUP;
        if (side) blocks_prefetch_lines(side);
        if (prefetch) {  /* the next V blocks' group into L2 while this one computes */
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) {
                const uint8_t *ahead = qg + (V + v) * block_bytes;
                for (int64_t line = 0; line < group_bytes; line += 64) _mm_prefetch((const char *)(ahead + line), _MM_HINT_T1);
                _mm_prefetch((const char *)(p + (V + v) * block_params + g * 2 * BLOCK_ROWS), _MM_HINT_T1);
            }
        }
        __m512i dot[VNNI_TILE_ROWS][VNNI_ONE_ROW_BLOCKS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) dot[r][v] = _mm512_setzero_si512();
        if (BITS == 4) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m512i lo[VNNI_ONE_ROW_BLOCKS], hi[VNNI_ONE_ROW_BLOCKS];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) {
                    const __m512i b = _mm512_loadu_si512(qg + v * block_bytes + j * 64);
                    lo[v] = _mm512_and_si512(b, nibble);
                    hi[v] = _mm512_and_si512(_mm512_srli_epi16(b, 4), nibble);
                }
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) {
                    const int8_t *a = xg + r * K + 4 * j;
#pragma GCC unroll 4
                    for (int v = 0; v < V; v++) dot[r][v] = dot4(dot4(dot[r][v], lo[v], a), hi[v], a + 16);
                }
            }
        } else {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m512i b[VNNI_ONE_ROW_BLOCKS];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) b[v] = _mm512_loadu_si512(qg + v * block_bytes + j * 64);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
#pragma GCC unroll 4
                    for (int v = 0; v < V; v++) dot[r][v] = dot4(dot[r][v], b[v], xg + r * K + 4 * j);
            }
        }
        __m512 scale[VNNI_ONE_ROW_BLOCKS], low[VNNI_ONE_ROW_BLOCKS];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            const uint16_t *pg = p + v * block_params + g * 2 * BLOCK_ROWS;
            scale[v] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)pg));
            low[v] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pg + BLOCK_ROWS)));
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 d = _mm512_set1_ps(dx[r * groups + g]), s = _mm512_set1_ps(xsum[r * groups + g]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) {
                acc[r][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][v]), _mm512_mul_ps(scale[v], d), acc[r][v]);
                acc[r][v] = _mm512_fmadd_ps(low[v], s, acc[r][v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) blocks_store(o, row + r, (block + v) * BLOCK_ROWS, acc[r][v]);
}

#define TILE(BITS, R_, V_)                                                                         \
    case (BITS) * 100 + (R_) * 10 + (V_): tile(BITS, R_, V_, w, x, block, row, o, prefetch, side); return;
#define TILES(BITS)                                                                                \
    TILE(BITS, 1, 1) TILE(BITS, 1, 2) TILE(BITS, 1, 3) TILE(BITS, 1, 4)                           \
    TILE(BITS, 2, 1) TILE(BITS, 2, 2) TILE(BITS, 3, 1) TILE(BITS, 3, 2) TILE(BITS, 4, 1) TILE(BITS, 4, 2)      \
    TILE(BITS, 5, 1) TILE(BITS, 5, 2) TILE(BITS, 6, 1) TILE(BITS, 6, 2)

void fw_blocks_vnni_tile(const blocks_weights *w, const blocks_rows *x, int R, int V, int64_t block, int64_t row,
                         const blocks_out *o, int prefetch, blocks_prefetch *side) {
    switch (w->bits * 100 + R * 10 + V) {
    TILES(4)
    TILES(8)
    }
    abort();  /* a tile shape gemv.c never asks for */
}

#else
void fw_blocks_quantize(const uint16_t *x, int64_t K, int8_t *q, float *scale, float *sum) {
    (void)x; (void)K; (void)q; (void)scale; (void)sum;
    abort();  /* gemv.c takes the float path without VNNI */
}

void fw_blocks_vnni_tile(const blocks_weights *w, const blocks_rows *x, int R, int V, int64_t block, int64_t row,
                         const blocks_out *o, int prefetch, blocks_prefetch *side) {
    (void)w; (void)x; (void)R; (void)V; (void)block; (void)row; (void)o; (void)prefetch; (void)side;
    abort();
}
#endif
