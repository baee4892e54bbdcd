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
 * result depends on its own sequence only. With AVX512-BF16 and head sizes 64 and 128 the
 * inner loop is attention_quant_avx512.c's instead, which widens less per code.
 */
#include "kv_quant.h"

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
        if (rows == FW_KV_TILE) {
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
/* The G queries q [G, D] (scaled) of one kv head over its n rows at offsets into acc [G, D];
 * scores is scratch [G, stride], tile [FW_KV_TILE, D]. */
static inline __attribute__((always_inline)) void attend_rows(const float *q, const uint8_t *key_cache,
                                                              const uint8_t *value_cache, const int64_t *offsets,
                                                              int64_t n, int64_t G, const int64_t D, int64_t stride,
                                                              float soft_cap, int64_t kind, float *scores,
                                                              float *tile, float *acc) {
    fw_kv_fetch_rows(key_cache, offsets, 0, FW_KV_FETCH_AHEAD < n ? FW_KV_FETCH_AHEAD : n, D);
    for (int64_t j = 0; j < n; j += FW_KV_TILE) {
        const int64_t rows = n - j < FW_KV_TILE ? n - j : FW_KV_TILE;
        fw_kv_fetch_rows(key_cache, offsets, j + FW_KV_FETCH_AHEAD, j + FW_KV_FETCH_AHEAD + rows < n ? j + FW_KV_FETCH_AHEAD + rows : n, D);
        fw_kv_fetch_rows(value_cache, offsets, j, j + rows, D);
        dequantize_rows(key_cache, offsets + j, rows, D, kind, tile);
        for (int64_t g = 0; g < G; g++) tile_scores(q + g * D, tile, rows, D, scores + g * stride + j);
    }
    for (int64_t g = 0; g < G; g++) {
        const float inv = fw_kv_softmax_exps(scores + g * stride, n, soft_cap);
        for (int64_t d = 0; d < D; d++) acc[g * D + d] = 0.0f;
        scores[g * stride + n] = inv;  /* kept beside the exps until the sums are done */
    }
    for (int64_t j = 0; j < n; j += FW_KV_TILE) {
        const int64_t rows = n - j < FW_KV_TILE ? n - j : FW_KV_TILE;
        dequantize_rows(value_cache, offsets + j, rows, D, kind, tile);
        for (int64_t g = 0; g < G; g++) tile_values(scores + g * stride + j, tile, rows, D, acc + g * D);
    }
    for (int64_t g = 0; g < G; g++) {
        const float inv = scores[g * stride + n];
        for (int64_t d = 0; d < D; d++) acc[g * D + d] *= inv;
    }
}

static void attend(float *q, const uint8_t *key_cache, const uint8_t *value_cache, const int64_t *offsets,
                   int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, int64_t kind, float *scores,
                   float *tile, float *factors, float *acc) {
#if defined(__AVX512BF16__)
    if (D == 64 || D == 128) {
        fw_attend_quant_rows_bf16(q, key_cache, value_cache, offsets, n, G, D, stride, soft_cap, kind, scores, tile,
                                  factors, acc);
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
        float *scores = fw_scratch(sizeof(float) * (size_t)(G * stride + 2 * G * D + FW_KV_TILE * D + max_len)); \
        float *q = scores + G * stride, *acc = q + G * D, *tile = acc + G * D, *factors = tile + FW_KV_TILE * D; \
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
