/* The block layout's tiles with float32 activations: float32 models (whose activations
 * are not quantized, so each product is exact up to float32 rounding), and bfloat16 ones
 * on CPUs without AVX512-VNNI.
 *
 * With AVX-512, a vector holds one level of each of the block's 16 weight rows; each is
 * unpacked once per tile and multiplied into up to FLOAT_TILE_ROWS input rows (their x
 * broadcast), so every (weight row, input row) sum stays in its lane, in the order
 * blocks.h states whatever the tile's shape. Elsewhere, plain loops in the same order.
 */
#include "blocks.h"

#if defined(__AVX512F__)

static inline __attribute__((always_inline)) void tile(const int BITS, const int R, const blocks_weights *w,
                                                       const blocks_rows *x, int64_t block, int64_t row,
                                                       const blocks_out *o) {
    const int64_t K = w->K, groups = K / BLOCK_GROUP, group_bytes = blocks_group_bytes(BITS);
    const uint8_t *q = w->q + block * groups * group_bytes;
    const uint16_t *p = w->params + block * groups * 2 * BLOCK_ROWS;
    const float *xr = x->x + row * K, *xsum = x->sum + row * groups;
    const __m512i mask = _mm512_set1_epi32(BITS == 4 ? 15 : 255);
    __m512 acc[FLOAT_TILE_ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *qg = q + g * group_bytes;
        const float *xg = xr + g * BLOCK_GROUP;
        __m512 a[FLOAT_TILE_ROWS], b[FLOAT_TILE_ROWS];  /* elements 0..15 and 16..31 */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_ps();
        if (BITS == 4) {
            for (int j = 0; j < 4; j++) {
                const __m512i packed = _mm512_loadu_si512(qg + j * 64);
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    const __m512i shifted = _mm512_srli_epi32(packed, 8 * t);
                    const __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(shifted, mask));
                    const __m512 hi = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(shifted, 4), mask));
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) {
                        a[r] = _mm512_fmadd_ps(lo, _mm512_set1_ps(xg[r * K + 4 * j + t]), a[r]);
                        b[r] = _mm512_fmadd_ps(hi, _mm512_set1_ps(xg[r * K + 16 + 4 * j + t]), b[r]);
                    }
                }
            }
        } else {
            for (int j = 0; j < 8; j++) {
                const __m512i packed = _mm512_loadu_si512(qg + j * 64);
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    const __m512 level = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(packed, 8 * t), mask));
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) {
                        const __m512 xe = _mm512_set1_ps(xg[r * K + 4 * j + t]);
                        if (j < 4) a[r] = _mm512_fmadd_ps(level, xe, a[r]);
                        else b[r] = _mm512_fmadd_ps(level, xe, b[r]);
                    }
                }
            }
        }
        const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + g * 2 * BLOCK_ROWS)));
        const __m512 low = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + g * 2 * BLOCK_ROWS + BLOCK_ROWS)));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            acc[r] = _mm512_fmadd_ps(_mm512_add_ps(a[r], b[r]), scale, acc[r]);
            acc[r] = _mm512_fmadd_ps(low, _mm512_set1_ps(xsum[r * groups + g]), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) blocks_store(o, row + r, block * BLOCK_ROWS, acc[r]);
}

void fw_blocks_float_tile(const blocks_weights *w, const blocks_rows *x, int R, int64_t block, int64_t row,
                          const blocks_out *o) {
    switch (w->bits * 10 + R) {
    case 41: tile(4, 1, w, x, block, row, o); return;
    case 42: tile(4, 2, w, x, block, row, o); return;
    case 43: tile(4, 3, w, x, block, row, o); return;
    case 44: tile(4, 4, w, x, block, row, o); return;
    case 81: tile(8, 1, w, x, block, row, o); return;
    case 82: tile(8, 2, w, x, block, row, o); return;
    case 83: tile(8, 3, w, x, block, row, o); return;
    case 84: tile(8, 4, w, x, block, row, o); return;
    }
    abort();  /* a tile shape gemv.c never asks for */
}

#else
static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31u, man = h & 1023u;
    union { uint32_t u; float f; } v;
    if (exp == 0) return (sign ? -1.0f : 1.0f) * ldexpf((float)man, -24);
    v.u = sign | (exp == 31 ? 0x7f800000u | (man << 13) : ((exp + 112) << 23) | (man << 13));
    return v.f;
}

/* Level e (0..31) of lane i of a block's group (bits 4 or 8). */
static inline float level_at(int bits, const uint8_t *qg, int i, int e) {
    const int byte = bits == 4 ? e % 16 : e;
    const uint8_t stored = qg[(byte / 4 * BLOCK_ROWS + i) * 4 + byte % 4];
    return (float)(bits == 4 ? (e < 16 ? stored & 15 : stored >> 4) : stored);
}

void fw_blocks_float_tile(const blocks_weights *w, const blocks_rows *x, int R, int64_t block, int64_t row,
                          const blocks_out *o) {
    const int64_t K = w->K, groups = K / BLOCK_GROUP, group_bytes = blocks_group_bytes(w->bits);
    const uint8_t *q = w->q + block * groups * group_bytes;
    const uint16_t *p = w->params + block * groups * 2 * BLOCK_ROWS;
    for (int r = 0; r < R; r++) {
        const float *xr = x->x + (row + r) * K, *xsum = x->sum + (row + r) * groups;
        for (int i = 0; i < BLOCK_ROWS && block * BLOCK_ROWS + i < o->N; i++) {
            float acc = 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                const uint8_t *qg = q + g * group_bytes;
                float a = 0.0f, b = 0.0f;
                for (int e = 0; e < 16; e++) a += level_at(w->bits, qg, i, e) * xr[g * BLOCK_GROUP + e];
                for (int e = 16; e < 32; e++) b += level_at(w->bits, qg, i, e) * xr[g * BLOCK_GROUP + e];
                acc += (a + b) * half_to_float(p[g * 2 * BLOCK_ROWS + i]);
                acc += half_to_float(p[g * 2 * BLOCK_ROWS + BLOCK_ROWS + i]) * xsum[g];
            }
            blocks_store_one(o, row + r, block * BLOCK_ROWS + i, acc);
        }
    }
}
#endif
