/* The quantized KV cache's rows (fw.attention.kv_format): head_size one-byte codes, then
 * the row's float32 scale; a value is code * scale. int8 codes are two's complement,
 * fp8 codes float8 e4m3 ("fn": no infinities, +-448 the largest finite value).
 * Helpers shared by the write (kv_quant.c) and the attention (attention_quant.c). */
#ifndef FW_KV_QUANT_H
#define FW_KV_QUANT_H
#include "fw_cpu.h"

enum { FW_KV_MODEL = 0, FW_KV_INT8 = 1, FW_KV_FP8 = 2 };
#define FW_KV_SCALE_BYTES 4
#define FW_FP8_MAX 448.0f

/* x (|x| <= 448) to e4m3, rounding to nearest even as torch's float8_e4m3fn conversion does. */
static inline uint8_t fw_fp8_store(float x) {
    union { uint32_t u; float f; } v;
    v.f = x;
    const uint8_t sign = (uint8_t)((v.u >> 24) & 0x80u);
    v.u &= 0x7fffffffu;
    if (v.f < 0.015625f)  /* below 2^-6: subnormal steps of 2^-9 (8 rounds up to the first normal) */
        return sign | (uint8_t)__builtin_rintf(v.f * 512.0f);
    const uint32_t rounded = (v.u + 0x7ffffu + ((v.u >> 20) & 1u)) & ~0xfffffu;  /* 3 mantissa bits */
    int32_t code = (int32_t)(((rounded >> 23) - 120u) << 3 | ((rounded >> 20) & 7u));
    return sign | (uint8_t)(code > 0x7e ? 0x7e : code);
}

static inline float fw_fp8_load(uint8_t c) {
    const int e = (c >> 3) & 15, m = c & 7;
    const float magnitude = e == 0 ? (float)m * 0.001953125f : ldexpf(1.0f + (float)m * 0.125f, e - 7);
    return c & 0x80 ? -magnitude : magnitude;
}

/* The factor that turns a row's vector-widened codes into values: fp8 codes are widened
 * as float16 with the exponent bias 8 short (a power of two, so exact). */
static inline float fw_kv_factor(int64_t kind, float scale) {
    return kind == FW_KV_FP8 ? 256.0f * scale : scale;
}

#if defined(__AVX512F__)
/* 16 codes at p as float32 (before fw_kv_factor). int8: sign-extend and convert. fp8:
 * e4m3's exponent and mantissa moved into a float16's (bias 15, not 7) and converted
 * with vcvtph2ps, which handles the subnormals exactly. */
static inline __m512 fw_widen_kv(const uint8_t *p, int64_t kind) {
    const __m128i bytes = _mm_loadu_si128((const __m128i *)p);
    if (kind == FW_KV_INT8) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
    const __m256i h = _mm256_cvtepu8_epi16(bytes);
    const __m256i half = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x7f)), 7),
                                         _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x80)), 8));
    return _mm512_cvtph_ps(half);
}
#endif

/* Rows a decode tile takes at once, and how far ahead of it keys are fetched. */
#define FW_KV_TILE 16
#define FW_KV_FETCH_AHEAD 32

/* Rows [from, to) of a cache into L2. A kv head's rows of a block are contiguous (rows of
 * D + 4 bytes), so each row asks for the line holding its last byte, and a row that does
 * not follow its predecessor also for its first: one request per line, where two per row
 * (half of them repeats) overflowed the queue and left most rows to be waited for. */
static inline void fw_kv_fetch_rows(const uint8_t *cache, const int64_t *offsets, int64_t from, int64_t to, int64_t D) {
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

/* sc [n] -> exp(sc - max) in place (after the soft cap); returns 1 / their sum. */
static inline float fw_kv_softmax_exps(float *sc, int64_t n, float soft_cap) {
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

/* kv_quant.c and attention_quant.c: the write and the decode attention of a quantized cache. */
#define DECLARE_KV_QUANT(SUFFIX, T)                                                                \
    void fw_write_kv_quant_##SUFFIX(const T *key, int64_t key_stride, const T *value, int64_t value_stride, \
                                    uint8_t *key_cache, uint8_t *value_cache, const int64_t *slots, \
                                    int64_t rows, int64_t kv_heads, int64_t block_size, int64_t D,  \
                                    int64_t kind, int64_t dynamic);                                 \
    void fw_paged_decode_quant_##SUFFIX(T *out, const T *query, int64_t q_stride, const uint8_t *key_cache, \
                                        const uint8_t *value_cache, const int32_t *block_table,    \
                                        int64_t table_stride, const int32_t *seq_lens, int64_t seqs, \
                                        int64_t kv_heads, int64_t group, int64_t head_size,         \
                                        int64_t block_size, float scale, int64_t window, float soft_cap, \
                                        int64_t max_len, int64_t kind);
DECLARE_KV_QUANT(f32, float)
DECLARE_KV_QUANT(bf16, uint16_t)

#if defined(__AVX512BF16__)
/* attention_quant_avx512.c: one kv head's G queries q [G, D] (scaled; overwritten) over its n
 * rows at offsets, D 64 or 128, into acc [G, D]; scores [G, stride], tile [FW_KV_TILE, D]
 * and factors [n] are scratch. */
void fw_attend_quant_rows_bf16(float *q, const uint8_t *key_cache, const uint8_t *value_cache, const int64_t *offsets,
                               int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, int64_t kind,
                               float *scores, float *tile, float *factors, float *acc);
#endif

static inline float fw_kv_row_scale(const uint8_t *row, int64_t D) {
    float scale;
    memcpy(&scale, row + D, sizeof scale);
    return scale;
}
#endif
