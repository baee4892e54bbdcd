/* Decode attention over a quantized paged KV cache (kv_quant.h: int8 or fp8 e4m3 codes
 * with a float32 scale per token and head), the twin of attention.c's: one query token per
 * sequence over its paged context, parallel over (sequence, kv head).
 *
 * The cache is read once, a tile of 16 rows at a time: each row's codes are widened to
 * float32 and multiplied by the row's scale into a tile that stays in L1 (int8: sign
 * extension and vcvtdq2ps; fp8: the bits moved into a float16 and vcvtph2ps), and all G
 * queries of the kv head use the tile. So the arithmetic is attention in float32 over the
 * dequantized keys and values (the torch reference's), while memory traffic is one byte
 * per element plus four per row. Sums run in a fixed order (rows ascending), so a row's
 * result depends on its own sequence only.
 */
#include "kv_quant.h"

#define TILE 16
#define FETCH_AHEAD 32

/* Rows [from, to) of a cache into L2. A kv head's rows of a block are contiguous (rows of
 * D + 4 bytes), so each row asks for the line holding its last byte, and a row that does
 * not follow its predecessor also for its first: one request per line, where two per row
 * (half of them repeats) overflowed the queue and left most rows to be waited for. */
static inline void fetch_rows(const uint8_t *cache, const int64_t *offsets, int64_t from, int64_t to, int64_t D) {
#if defined(__AVX512F__)
    const int64_t row_bytes = D + FW_KV_SCALE_BYTES;
    for (int64_t r = from; r < to; r++) {
        if (r == from || offsets[r] != offsets[r - 1] + row_bytes) _mm_prefetch((const char *)(cache + offsets[r]), _MM_HINT_T1);
        _mm_prefetch((const char *)(cache + offsets[r] + row_bytes - 1), _MM_HINT_T1);
    }
#else
    (void)cache; (void)offsets; (void)from; (void)to; (void)D;
#endif
}

/* tile [rows, D] = the dequantized rows at cache + offsets[r]. */
static inline __attribute__((always_inline)) void dequantize_rows(const uint8_t *cache, const int64_t *offsets,
                                                                  int64_t rows, const int64_t D, int64_t kind,
                                                                  float *tile) {
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = cache + offsets[r];
        const float scale = fw_kv_row_scale(row, D);
#if defined(__AVX512F__)
        if (D % 16 == 0) {
            const __m512 factor = _mm512_set1_ps(fw_kv_factor(kind, scale));
            for (int64_t c = 0; c < D / 16; c++)
                _mm512_storeu_ps(tile + r * D + 16 * c, _mm512_mul_ps(fw_widen_kv(row + 16 * c, kind), factor));
            continue;
        }
#endif
        for (int64_t d = 0; d < D; d++)
            tile[r * D + d] = (kind == FW_KV_FP8 ? fw_fp8_load(row[d]) : (float)(int8_t)row[d]) * scale;
    }
}

/* sc[r] = q . tile[r] for rows r < rows. */
static inline __attribute__((always_inline)) void tile_scores(const float *q, const float *tile, int64_t rows,
                                                              const int64_t D, float *sc) {
#if defined(__AVX512F__)
    if (D % 16 == 0 && D <= 128) {
        __m512 qv[8];
        for (int64_t c = 0; c < D / 16; c++) qv[c] = _mm512_loadu_ps(q + 16 * c);
        if (rows == TILE) {
            __m512 part[16];
            for (int r = 0; r < 16; r++) {
                part[r] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(tile + r * D));
                for (int64_t c = 1; c < D / 16; c++)
                    part[r] = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(tile + r * D + 16 * c), part[r]);
            }
            _mm512_storeu_ps(sc, fw_hsum16(part));
            return;
        }
        for (int64_t r = 0; r < rows; r++) {
            __m512 s = _mm512_mul_ps(qv[0], _mm512_loadu_ps(tile + r * D));
            for (int64_t c = 1; c < D / 16; c++) s = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(tile + r * D + 16 * c), s);
            sc[r] = _mm512_reduce_add_ps(s);
        }
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) {
        float s = 0.0f;
        for (int64_t d = 0; d < D; d++) s += q[d] * tile[r * D + d];
        sc[r] = s;
    }
}

/* acc [D] += sum over r of p[r] * tile[r]. */
static inline __attribute__((always_inline)) void tile_values(const float *p, const float *tile, int64_t rows,
                                                              const int64_t D, float *acc) {
#if defined(__AVX512F__)
    if (D % 16 == 0 && D <= 128) {
        __m512 sum[8];
        for (int64_t c = 0; c < D / 16; c++) sum[c] = _mm512_loadu_ps(acc + 16 * c);
        for (int64_t r = 0; r < rows; r++) {
            const __m512 pr = _mm512_set1_ps(p[r]);
            for (int64_t c = 0; c < D / 16; c++) sum[c] = _mm512_fmadd_ps(pr, _mm512_loadu_ps(tile + r * D + 16 * c), sum[c]);
        }
        for (int64_t c = 0; c < D / 16; c++) _mm512_storeu_ps(acc + 16 * c, sum[c]);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++)
        for (int64_t d = 0; d < D; d++) acc[d] += p[r] * tile[r * D + d];
}

/* sc [n] -> exp(sc - max) in place (after the soft cap); returns 1 / their sum. */
static float softmax_exps(float *sc, int64_t n, float soft_cap) {
    if (soft_cap > 0.0f) for (int64_t j = 0; j < n; j++) sc[j] = soft_cap * tanhf(sc[j] / soft_cap);
    float top = -INFINITY, lanes[FW_LANES] = {0};
    for (int64_t j = 0; j < n; j++) top = sc[j] > top ? sc[j] : top;
    int64_t e = 0;
    for (; e + FW_LANES <= n; e += FW_LANES)
        for (int l = 0; l < FW_LANES; l++) { sc[e + l] = fw_expf(sc[e + l] - top); lanes[l] += sc[e + l]; }
    float total = fw_lanes_sum(lanes);
    for (; e < n; e++) { sc[e] = fw_expf(sc[e] - top); total += sc[e]; }
    return 1.0f / total;
}

/* The G queries q [G, D] (scaled) of one kv head over its n rows at offsets into acc [G, D];
 * scores is scratch [G, stride], tile [TILE, D]. */
static inline __attribute__((always_inline)) void attend_rows(const float *q, const uint8_t *key_cache,
                                                              const uint8_t *value_cache, const int64_t *offsets,
                                                              int64_t n, int64_t G, const int64_t D, int64_t stride,
                                                              float soft_cap, int64_t kind, float *scores,
                                                              float *tile, float *acc) {
    fetch_rows(key_cache, offsets, 0, FETCH_AHEAD < n ? FETCH_AHEAD : n, D);
    for (int64_t j = 0; j < n; j += TILE) {
        const int64_t rows = n - j < TILE ? n - j : TILE;
        fetch_rows(key_cache, offsets, j + FETCH_AHEAD, j + FETCH_AHEAD + rows < n ? j + FETCH_AHEAD + rows : n, D);
        fetch_rows(value_cache, offsets, j, j + rows, D);
        dequantize_rows(key_cache, offsets + j, rows, D, kind, tile);
        for (int64_t g = 0; g < G; g++) tile_scores(q + g * D, tile, rows, D, scores + g * stride + j);
    }
    for (int64_t g = 0; g < G; g++) {
        const float inv = softmax_exps(scores + g * stride, n, soft_cap);
        for (int64_t d = 0; d < D; d++) acc[g * D + d] = 0.0f;
        scores[g * stride + n] = inv;  /* kept beside the exps until the sums are done */
    }
    for (int64_t j = 0; j < n; j += TILE) {
        const int64_t rows = n - j < TILE ? n - j : TILE;
        dequantize_rows(value_cache, offsets + j, rows, D, kind, tile);
        for (int64_t g = 0; g < G; g++) tile_values(scores + g * stride + j, tile, rows, D, acc + g * D);
    }
    for (int64_t g = 0; g < G; g++) {
        const float inv = scores[g * stride + n];
        for (int64_t d = 0; d < D; d++) acc[g * D + d] *= inv;
    }
}

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
    fetch_rows(key_cache, offsets, 0, FETCH_AHEAD < n ? FETCH_AHEAD : n, D);
    for (int64_t j = 0; j < n; j += TILE) {
        const int64_t rows = n - j < TILE ? n - j : TILE;
        fetch_rows(key_cache, offsets, j + FETCH_AHEAD, j + FETCH_AHEAD + rows < n ? j + FETCH_AHEAD + rows : n, D);
        fetch_rows(value_cache, offsets, j, j + rows, D);
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
            if (rows == TILE)
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
    for (int g = 0; g < GC; g++) inv[g] = softmax_exps(ex + g * stride, n, soft_cap);
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
        fetch_rows(key_cache, offsets, 0, FETCH_AHEAD < n ? FETCH_AHEAD : n, D);
        for (int64_t j = 0; j < n; j += TILE) {
            const int64_t rows = n - j < TILE ? n - j : TILE;
            fetch_rows(key_cache, offsets, j + FETCH_AHEAD, j + FETCH_AHEAD + rows < n ? j + FETCH_AHEAD + rows : n, D);
            fetch_rows(value_cache, offsets, j, j + rows, D);
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
                if (rows == TILE)
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
#endif

static void attend(float *q, const uint8_t *key_cache, const uint8_t *value_cache, const int64_t *offsets,
                   int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, int64_t kind, float *scores,
                   float *tile, float *factors, float *acc) {
#if defined(__AVX512BF16__)
    if (D == 64) {
        attend_rows_bf16(q, key_cache, value_cache, offsets, n, G, 64, stride, soft_cap, kind, scores, tile, factors, acc);
        return;
    }
    if (D == 128) {
        attend_rows_bf16(q, key_cache, value_cache, offsets, n, G, 128, stride, soft_cap, kind, scores, tile, factors, acc);
        return;
    }
#endif
    (void)factors;
    if (D == 64)
        attend_rows(q, key_cache, value_cache, offsets, n, G, 64, stride, soft_cap, kind, scores, tile, acc);
    else if (D == 128)
        attend_rows(q, key_cache, value_cache, offsets, n, G, 128, stride, soft_cap, kind, scores, tile, acc);
    else if (D == 32)
        attend_rows(q, key_cache, value_cache, offsets, n, G, 32, stride, soft_cap, kind, scores, tile, acc);
    else
        attend_rows(q, key_cache, value_cache, offsets, n, G, D, stride, soft_cap, kind, scores, tile, acc);
}

#define DEFINE_DECODE_QUANT(SUFFIX, T, STORE)                                                     \
/* fw_paged_decode_##SUFFIX's contract, over caches of rows of D codes and a scale            \
 * ([blocks, kv_heads, block_size, D + 4] bytes) holding codes of `kind`. */                    \
void fw_paged_decode_quant_##SUFFIX(T *out, const T *query, int64_t q_stride, const uint8_t *key_cache, \
                                    const uint8_t *value_cache, const int32_t *block_table,        \
                                    int64_t table_stride, const int32_t *seq_lens, int64_t seqs,    \
                                    int64_t kv_heads, int64_t group, int64_t head_size,             \
                                    int64_t block_size, float scale, int64_t window, float soft_cap, \
                                    int64_t max_len, int64_t kind) {                                \
    const int64_t D = head_size, G = group, row_bytes = D + FW_KV_SCALE_BYTES;                     \
    const int64_t stride = max_len + 1;                                                            \
    _Pragma("omp parallel if (seqs * kv_heads > 1 && seqs * max_len >= 256)")                     \
    {                                                                                              \
        float *scores = fw_scratch(sizeof(float) * (size_t)(G * stride + 2 * G * D + TILE * D + max_len)); \
        float *q = scores + G * stride, *acc = q + G * D, *tile = acc + G * D, *factors = tile + TILE * D; \
        int64_t *offsets = fw_scratch(sizeof(int64_t) * (size_t)max_len);                          \
        _Pragma("omp for collapse(2) schedule(dynamic, 1)")                                           \
        for (int64_t b = 0; b < seqs; b++) {                                                       \
            for (int64_t h = 0; h < kv_heads; h++) {                                               \
                const int64_t len = seq_lens[b];                                                   \
                const int64_t first = (window > 0 && len > window) ? len - window : 0;             \
                const int64_t n = len - first;                                                     \
                const int32_t *table = block_table + b * table_stride;                             \
                for (int64_t pos = first, j = 0; pos < len;) {                                     \
                    const int64_t slot = pos % block_size;                                         \
                    const int64_t rows = block_size - slot < len - pos ? block_size - slot : len - pos; \
                    const int64_t at = (((int64_t)table[pos / block_size] * kv_heads + h) * block_size + slot) * row_bytes; \
                    for (int64_t r = 0; r < rows; r++) offsets[j++] = at + r * row_bytes;          \
                    pos += rows;                                                                   \
                }                                                                                  \
                row_##SUFFIX(q, query + b * q_stride + h * G * D, G * D);                          \
                for (int64_t i = 0; i < G * D; i++) q[i] *= scale;                                 \
                attend(q, key_cache, value_cache, offsets, n, G, D, stride, soft_cap, kind, scores, tile, factors, acc); \
                T *ob = out + (b * kv_heads + h) * G * D;                                          \
                for (int64_t i = 0; i < G * D; i++) ob[i] = STORE(acc[i]);                         \
            }                                                                                      \
        }                                                                                          \
        free(offsets);                                                                             \
        free(scores);                                                                              \
    }                                                                                              \
}

DEFINE_DECODE_QUANT(f32, float, f32_store)
DEFINE_DECODE_QUANT(bf16, uint16_t, bf16_store)
