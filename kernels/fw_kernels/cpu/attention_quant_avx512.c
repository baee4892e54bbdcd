/* The AVX512-BF16 / VNNI inner loop of attention_quant.c's decode attention over a
 * quantized cache (kv_quant.h), per sequence and kv head, for head sizes 64 and 128: int8
 * keys are scored exactly in integers (int16 query, vpdpwssd), fp8 keys with vdpbf16ps
 * (codes widened to bf16, exact for e4m3), and the values are summed in float32 with up
 * to three queries' sums in registers. */
#include "kv_quant.h"

#if defined(__AVX512BF16__)
/* 32 codes at p as bfloat16 (exact: int8 and e4m3 values fit bf16's 8 significant bits);
 * fp8 ones are the value / 256, as fw_widen_kv gives them. */
static inline __m512i codes_to_bf16(const uint8_t *p, int64_t kind) {
    return (__m512i)_mm512_cvtne2ps_pbh(fw_widen_kv(p + 16, kind), fw_widen_kv(p, kind));
}

#if defined(__AVX512VNNI__)
/* The scores of int8 keys, exactly in integers: each query row (float32, scaled) is
 * rounded to int16 against its own absolute maximum (15 bits, finer than the bf16 that
 * the fp8 and bf16 paths round it to), the codes are sign-extended to int16 into an L1
 * tile shared by the G queries, and vpdpwssd sums 32 products per instruction in int32
 * (at most 8 per lane for D <= 128: no overflow). A score is that sum times the query's
 * and the row's scales. qs is scratch [G]. */
static inline __attribute__((always_inline)) void int8_scores(
        float *q, const uint8_t *key_cache, const uint8_t *value_cache, const int64_t *offsets, int64_t n,
        int64_t G, const int64_t D, int64_t stride, float *scores, int16_t *kt, float *factors, float *qs) {
    int16_t *qi = (int16_t *)q;  /* in place, ascending: int16 i lands on floats already read */
    for (int64_t g = 0; g < G; g++) {
        float amax = 0.0f;
        for (int64_t d = 0; d < D; d++) amax = fabsf(q[g * D + d]) > amax ? fabsf(q[g * D + d]) : amax;
        qs[g] = amax / 32767.0f;
        const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 32767.0f / amax : 0.0f);
        for (int64_t d = 0; d < D; d += 16)
            _mm256_storeu_si256((__m256i *)(qi + g * D + d),
                                _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(q + g * D + d), inv))));
    }
    fw_kv_fetch_rows(key_cache, offsets, 0, FW_KV_FETCH_AHEAD < n ? FW_KV_FETCH_AHEAD : n, D);
    for (int64_t j = 0; j < n; j += FW_KV_TILE) {
        const int64_t rows = n - j < FW_KV_TILE ? n - j : FW_KV_TILE;
        fw_kv_fetch_rows(key_cache, offsets, j + FW_KV_FETCH_AHEAD, j + FW_KV_FETCH_AHEAD + rows < n ? j + FW_KV_FETCH_AHEAD + rows : n, D);
        fw_kv_fetch_rows(value_cache, offsets, j, j + rows, D);
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *row = key_cache + offsets[j + r];
            factors[j + r] = fw_kv_row_scale(row, D);
            for (int64_t c = 0; c < D / 32; c++)
                _mm512_storeu_si512(kt + r * D + 32 * c, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(row + 32 * c))));
        }
        for (int64_t g = 0; g < G; g++) {
            __m512 part[16];
            for (int64_t r = 0; r < rows; r++) {
                __m512i sum = _mm512_setzero_si512();
                for (int64_t c = 0; c < D / 32; c++)
                    sum = _mm512_dpwssd_epi32(sum, _mm512_loadu_si512(qi + g * D + 32 * c), _mm512_loadu_si512(kt + r * D + 32 * c));
                part[r] = _mm512_cvtepi32_ps(sum);
            }
            float *sc = scores + g * stride + j;
            const __m512 qscale = _mm512_set1_ps(qs[g]);
            if (rows == FW_KV_TILE)
                _mm512_storeu_ps(sc, _mm512_mul_ps(_mm512_mul_ps(fw_hsum16(part), _mm512_loadu_ps(factors + j)), qscale));
            else
                for (int64_t r = 0; r < rows; r++) sc[r] = _mm512_reduce_add_ps(part[r]) * factors[j + r] * qs[g];
        }
    }
}
#endif

/* acc [GC, D] = the softmax-weighted sum of the value rows for GC (a constant, so the sums
 * stay in registers) queries whose scores sit at ex, one query every stride floats: each
 * row is widened to float32 once for all GC queries, its scale folded into its weights. */
static inline __attribute__((always_inline)) void weighted_values(
        const uint8_t *value_cache, const int64_t *offsets, int64_t n, const int64_t D, const int GC, float *ex,
        int64_t stride, float soft_cap, int64_t kind, float *acc) {
    float inv[3];
    for (int g = 0; g < GC; g++) inv[g] = fw_kv_softmax_exps(ex + g * stride, n, soft_cap);
    __m512 sum[3][8];
    for (int g = 0; g < GC; g++)
        for (int64_t c = 0; c < D / 16; c++) sum[g][c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *row = value_cache + offsets[j];
        const float factor = fw_kv_factor(kind, fw_kv_row_scale(row, D));
        __m512 w[8];
        for (int64_t c = 0; c < D / 16; c++) w[c] = fw_widen_kv(row + 16 * c, kind);
        for (int g = 0; g < GC; g++) {
            const __m512 p = _mm512_set1_ps(ex[g * stride + j] * factor);
            for (int64_t c = 0; c < D / 16; c++) sum[g][c] = _mm512_fmadd_ps(p, w[c], sum[g][c]);
        }
    }
    for (int g = 0; g < GC; g++)
        for (int64_t c = 0; c < D / 16; c++)
            _mm512_storeu_ps(acc + g * D + 16 * c, _mm512_mul_ps(sum[g][c], _mm512_set1_ps(inv[g])));
}

/* attend_rows for D 64 or 128 on AVX512-BF16, with less work per code: the scores take
 * the query rounded to bf16 (as the bf16 cache's kernel does) against the codes widened
 * to bf16, 32 products per vdpbf16ps, and a row's scale multiplies its score; the values
 * are widened to float32 once per row for up to three queries, the row's scale folded
 * into its weight. factors is scratch [n]. */
static inline __attribute__((always_inline)) void attend_rows_bf16(
        float *q, const uint8_t *key_cache, const uint8_t *value_cache, const int64_t *offsets, int64_t n,
        int64_t G, const int64_t D, int64_t stride, float soft_cap, int64_t kind, float *scores, float *tile,
        float *factors, float *acc) {
#if defined(__AVX512VNNI__)
    if (kind == FW_KV_INT8) {
        int8_scores(q, key_cache, value_cache, offsets, n, G, D, stride, scores, (int16_t *)tile, factors, acc);
    } else
#endif
    {
        uint16_t *qb = (uint16_t *)q, *kt = (uint16_t *)tile;
        for (int64_t i = 0; i < G * D; i += 32)  /* in place: element i's bf16 lands before float i + 16 is read */
            _mm512_storeu_si512(qb + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(q + i)));
        fw_kv_fetch_rows(key_cache, offsets, 0, FW_KV_FETCH_AHEAD < n ? FW_KV_FETCH_AHEAD : n, D);
        for (int64_t j = 0; j < n; j += FW_KV_TILE) {
            const int64_t rows = n - j < FW_KV_TILE ? n - j : FW_KV_TILE;
            fw_kv_fetch_rows(key_cache, offsets, j + FW_KV_FETCH_AHEAD, j + FW_KV_FETCH_AHEAD + rows < n ? j + FW_KV_FETCH_AHEAD + rows : n, D);
            fw_kv_fetch_rows(value_cache, offsets, j, j + rows, D);
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t *row = key_cache + offsets[j + r];
                factors[j + r] = fw_kv_factor(kind, fw_kv_row_scale(row, D));
                for (int64_t c = 0; c < D / 32; c++) _mm512_storeu_si512(kt + r * D + 32 * c, codes_to_bf16(row + 32 * c, kind));
            }
            for (int64_t g = 0; g < G; g++) {
                __m512 part[16];
                for (int64_t r = 0; r < rows; r++) {
                    part[r] = _mm512_setzero_ps();
                    for (int64_t c = 0; c < D / 32; c++)
                        part[r] = _mm512_dpbf16_ps(part[r], (__m512bh)_mm512_loadu_si512(qb + g * D + 32 * c),
                                                   (__m512bh)_mm512_loadu_si512(kt + r * D + 32 * c));
                }
                float *sc = scores + g * stride + j;
                if (rows == FW_KV_TILE)
                    _mm512_storeu_ps(sc, _mm512_mul_ps(fw_hsum16(part), _mm512_loadu_ps(factors + j)));
                else
                    for (int64_t r = 0; r < rows; r++) sc[r] = _mm512_reduce_add_ps(part[r]) * factors[j + r];
            }
        }
    }
    for (int64_t g0 = 0; g0 < G; g0 += 3) {
        float *ex = scores + g0 * stride;
        switch (G - g0 < 3 ? G - g0 : 3) {
        case 1: weighted_values(value_cache, offsets, n, D, 1, ex, stride, soft_cap, kind, acc + g0 * D); break;
        case 2: weighted_values(value_cache, offsets, n, D, 2, ex, stride, soft_cap, kind, acc + g0 * D); break;
        default: weighted_values(value_cache, offsets, n, D, 3, ex, stride, soft_cap, kind, acc + g0 * D); break;
        }
    }
}

void fw_attend_quant_rows_bf16(float *q, const uint8_t *key_cache, const uint8_t *value_cache, const int64_t *offsets,
                               int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, int64_t kind,
                               float *scores, float *tile, float *factors, float *acc) {
    if (D == 64)
        attend_rows_bf16(q, key_cache, value_cache, offsets, n, G, 64, stride, soft_cap, kind, scores, tile, factors, acc);
    else
        attend_rows_bf16(q, key_cache, value_cache, offsets, n, G, 128, stride, soft_cap, kind, scores, tile, factors, acc);
}
#endif
