/* Decode attention over the paged KV cache: one query token per sequence; and encoders'
 * bidirectional attention within each prompt of a step. */
#include "fw_cpu.h"

/* One (sequence, kv head) of decode attention: the G queries q [G, D] (already scaled)
 * over the n cached rows at cache + offsets[j]; writes the result to acc [G, D]. scores is
 * scratch [G, stride]. The vector path fixes D at compile time so the row lives in
 * registers; other head sizes take the plain loops. */
#define DEFINE_ATTEND(SUFFIX, T, LOAD, VLOAD, SCORES)                                              \
static inline __attribute__((always_inline)) void attend_rows_##SUFFIX(                            \
        const float *q, const T *key_cache, const T *value_cache, const int64_t *offsets,           \
        int64_t n, int64_t G, const int64_t D, int64_t stride, float soft_cap, float *scores,       \
        float *acc) {                                                                              \
    for (int64_t g = 0; g < G; g++) {                                                              \
        const float *qg = q + g * D;                                                               \
        float *sc = scores + g * stride;                                                           \
        SCORES(T, VLOAD)                                                                           \
        if (soft_cap > 0.0f) for (int64_t j = 0; j < n; j++) sc[j] = soft_cap * tanhf(sc[j] / soft_cap); \
        float top = -INFINITY, lanes[FW_LANES] = {0};                                              \
        for (int64_t j = 0; j < n; j++) top = sc[j] > top ? sc[j] : top;                           \
        int64_t e = 0;                                                                             \
        for (; e + FW_LANES <= n; e += FW_LANES)                                                   \
            for (int l = 0; l < FW_LANES; l++) { sc[e + l] = fw_expf(sc[e + l] - top); lanes[l] += sc[e + l]; } \
        float total = fw_lanes_sum(lanes);                                                         \
        for (; e < n; e++) { sc[e] = fw_expf(sc[e] - top); total += sc[e]; }                       \
        const float inv = 1.0f / total;                                                            \
        float *ag = acc + g * D;                                                                   \
        VECTOR_VALUES(T, VLOAD)                                                                    \
    }                                                                                              \
}                                                                                                  \
static void attend_##SUFFIX(const float *q, const T *key_cache, const T *value_cache,              \
                            const int64_t *offsets, int64_t n, int64_t G, int64_t D, int64_t stride, \
                            float soft_cap, float *scores, float *acc) {                           \
    if (HAVE_VECTORS && D == 32)                                                                   \
        attend_rows_##SUFFIX(q, key_cache, value_cache, offsets, n, G, 32, stride, soft_cap, scores, acc); \
    else if (HAVE_VECTORS && D == 64)                                                              \
        attend_rows_##SUFFIX(q, key_cache, value_cache, offsets, n, G, 64, stride, soft_cap, scores, acc); \
    else if (HAVE_VECTORS && D == 128)                                                             \
        attend_rows_##SUFFIX(q, key_cache, value_cache, offsets, n, G, 128, stride, soft_cap, scores, acc); \
    else                                                                                           \
        attend_plain_##SUFFIX(q, key_cache, value_cache, offsets, n, G, D, stride, soft_cap, scores, acc); \
}

#define DEFINE_ATTEND_PLAIN(SUFFIX, T, LOAD)                                                       \
static void attend_plain_##SUFFIX(const float *q, const T *key_cache, const T *value_cache,        \
                                  const int64_t *offsets, int64_t n, int64_t G, int64_t D,          \
                                  int64_t stride, float soft_cap, float *scores, float *acc) {      \
    for (int64_t g = 0; g < G; g++) {                                                              \
        const float *qg = q + g * D;                                                               \
        float *sc = scores + g * stride, top = -INFINITY, total = 0.0f;                            \
        for (int64_t j = 0; j < n; j++) {                                                          \
            const T *k = key_cache + offsets[j];                                                   \
            float s = 0.0f;                                                                        \
            for (int64_t d = 0; d < D; d++) s += qg[d] * LOAD(k[d]);                               \
            if (soft_cap > 0.0f) s = soft_cap * tanhf(s / soft_cap);                               \
            sc[j] = s;                                                                             \
            top = s > top ? s : top;                                                               \
        }                                                                                          \
        for (int64_t j = 0; j < n; j++) { sc[j] = fw_expf(sc[j] - top); total += sc[j]; }         \
        float *ag = acc + g * D;                                                                   \
        for (int64_t d = 0; d < D; d++) ag[d] = 0.0f;                                              \
        for (int64_t j = 0; j < n; j++) {                                                          \
            const T *v = value_cache + offsets[j];                                                 \
            const float p = sc[j] / total;                                                         \
            for (int64_t d = 0; d < D; d++) ag[d] += p * LOAD(v[d]);                               \
        }                                                                                          \
    }                                                                                              \
}

#if defined(__AVX512F__)
#define HAVE_VECTORS 1
static inline __m512 vload_f32(const float *p) { return _mm512_loadu_ps(p); }
/* scores: D / 16 query vectors in registers; rows 16 at a time, summed by fw_hsum16 */
#define VECTOR_SCORES(T, VLOAD)                                                                    \
    __m512 qv[D / 16];                                                                             \
    for (int64_t c = 0; c < D / 16; c++) qv[c] = _mm512_loadu_ps(qg + 16 * c);                     \
    int64_t j = 0;                                                                                 \
    for (; j + 16 <= n; j += 16) {                                                                 \
        __m512 part[16];                                                                           \
        for (int r = 0; r < 16; r++) {                                                             \
            const T *k = key_cache + offsets[j + r];                                               \
            part[r] = _mm512_mul_ps(qv[0], VLOAD(k));                                              \
            for (int64_t c = 1; c < D / 16; c++) part[r] = _mm512_fmadd_ps(qv[c], VLOAD(k + 16 * c), part[r]); \
        }                                                                                          \
        _mm512_storeu_ps(sc + j, fw_hsum16(part));                                                 \
    }                                                                                              \
    for (; j < n; j++) {                                                                           \
        const T *k = key_cache + offsets[j];                                                       \
        __m512 s = _mm512_mul_ps(qv[0], VLOAD(k));                                                 \
        for (int64_t c = 1; c < D / 16; c++) s = _mm512_fmadd_ps(qv[c], VLOAD(k + 16 * c), s);     \
        sc[j] = _mm512_reduce_add_ps(s);                                                           \
    }
/* values: the weighted sum in registers, two interleaved chains to hide FMA latency */
#define VECTOR_VALUES(T, VLOAD)                                                                    \
    __m512 even[D / 16], odd[D / 16];                                                              \
    for (int64_t c = 0; c < D / 16; c++) even[c] = odd[c] = _mm512_setzero_ps();                   \
    j = 0;                                                                                         \
    for (; j + 1 < n; j += 2) {                                                                    \
        const T *v0 = value_cache + offsets[j], *v1 = value_cache + offsets[j + 1];                \
        const __m512 p0 = _mm512_set1_ps(sc[j]), p1 = _mm512_set1_ps(sc[j + 1]);                   \
        for (int64_t c = 0; c < D / 16; c++) {                                                     \
            even[c] = _mm512_fmadd_ps(p0, VLOAD(v0 + 16 * c), even[c]);                            \
            odd[c] = _mm512_fmadd_ps(p1, VLOAD(v1 + 16 * c), odd[c]);                              \
        }                                                                                          \
    }                                                                                              \
    if (j < n) {                                                                                   \
        const T *v0 = value_cache + offsets[j];                                                    \
        const __m512 p0 = _mm512_set1_ps(sc[j]);                                                   \
        for (int64_t c = 0; c < D / 16; c++) even[c] = _mm512_fmadd_ps(p0, VLOAD(v0 + 16 * c), even[c]); \
    }                                                                                              \
    const __m512 vinv = _mm512_set1_ps(inv);                                                       \
    for (int64_t c = 0; c < D / 16; c++)                                                           \
        _mm512_storeu_ps(ag + 16 * c, _mm512_mul_ps(_mm512_add_ps(even[c], odd[c]), vinv));
#else
#define HAVE_VECTORS 0
#define VECTOR_SCORES(T, VLOAD)
#define VECTOR_VALUES(T, VLOAD)
#define vload_f32 NULL
#define fw_widen_bf16 NULL
#endif

DEFINE_ATTEND_PLAIN(f32, float, f32_load)
DEFINE_ATTEND_PLAIN(bf16, uint16_t, bf16_load)
#if HAVE_VECTORS
DEFINE_ATTEND(f32, float, f32_load, vload_f32, VECTOR_SCORES)
#else
#define attend_f32 attend_plain_f32
#endif

#if defined(__AVX512BF16__)
static void attend_bf16(float *q, const uint16_t *key_cache, const uint16_t *value_cache, const int64_t *offsets,
                        int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, float *scores, float *acc) {
    if (D == 64 || D == 128)
        fw_attend_rows_bf16(q, key_cache, value_cache, offsets, n, G, D, stride, soft_cap, scores, acc);
    else
        attend_plain_bf16(q, key_cache, value_cache, offsets, n, G, D, stride, soft_cap, scores, acc);
}
#elif HAVE_VECTORS
DEFINE_ATTEND(bf16, uint16_t, bf16_load, fw_widen_bf16, VECTOR_SCORES)
#else
#define attend_bf16 attend_plain_bf16
#endif

#define DEFINE_DECODE(SUFFIX, T, LOAD, STORE)                                                     \
/* Decode attention: one query token per sequence over its paged context.                   \
 * query row b (stride q_stride) holds heads [kv_heads * group, head_size]; caches are          \
 * [blocks, block_size, kv_heads, head_size]; block_table is [seqs, table_stride] int32.        \
 * window > 0 keeps only the last `window` positions; soft_cap > 0 caps scores with tanh.      \
 * out is [seqs, kv_heads * group, head_size]. Parallel over (sequence, kv head). */           \
void fw_paged_decode_##SUFFIX(T *out, const T *query, int64_t q_stride, const T *key_cache,       \
                              const T *value_cache, const int32_t *block_table,                   \
                              int64_t table_stride, const int32_t *seq_lens, int64_t seqs,         \
                              int64_t kv_heads, int64_t group, int64_t head_size,                  \
                              int64_t block_size, float scale, int64_t window, float soft_cap,     \
                              int64_t max_len) {                                                   \
    const int64_t token_stride = kv_heads * head_size, D = head_size, G = group;                   \
    _Pragma("omp parallel if (seqs * kv_heads > 1 && seqs * max_len >= 256)")                     \
    {                                                                                              \
        float *scores = fw_scratch(sizeof(float) * (size_t)(G * max_len + 2 * G * D));                 \
        float *q = scores + G * max_len, *acc = q + G * D;                                         \
        int64_t *offsets = fw_scratch(sizeof(int64_t) * (size_t)max_len);                              \
        _Pragma("omp for collapse(2) schedule(dynamic, 1)")                                           \
        for (int64_t b = 0; b < seqs; b++) {                                                       \
            for (int64_t h = 0; h < kv_heads; h++) {                                               \
                const int64_t len = seq_lens[b];                                                   \
                const int64_t first = (window > 0 && len > window) ? len - window : 0;             \
                const int64_t n = len - first;                                                     \
                const int32_t *table = block_table + b * table_stride;                             \
                for (int64_t pos = first, j = 0; pos < len;) { /* a block's rows at a time */     \
                    const int64_t slot = pos % block_size;                                         \
                    const int64_t rows = block_size - slot < len - pos ? block_size - slot : len - pos; \
                    const int64_t at = ((int64_t)table[pos / block_size] * block_size + slot) * token_stride + h * D; \
                    for (int64_t r = 0; r < rows; r++) offsets[j++] = at + r * token_stride;       \
                    pos += rows;                                                                   \
                }                                                                                  \
                row_##SUFFIX(q, query + b * q_stride + h * G * D, G * D);                          \
                for (int64_t i = 0; i < G * D; i++) q[i] *= scale;                                 \
                attend_##SUFFIX(q, key_cache, value_cache, offsets, n, G, D, max_len, soft_cap,    \
                                scores, acc);                                                      \
                T *ob = out + (b * kv_heads + h) * G * D;                                          \
                for (int64_t i = 0; i < G * D; i++) ob[i] = STORE(acc[i]);                         \
            }                                                                                      \
        }                                                                                          \
        free(offsets);                                                                             \
        free(scores);                                                                              \
    }                                                                                              \
}

DEFINE_DECODE(f32, float, f32_load, f32_store)
DEFINE_DECODE(bf16, uint16_t, bf16_load, bf16_store)

#define DEFINE_ENCODER(SUFFIX, T, STORE)                                                          \
/* Encoder attention: every query of a prompt over every key of that prompt, no cache.       \
 * query/key/value rows are the step's tokens (row strides q_stride and kv_stride), each row's \
 * heads [heads, head_size] contiguous; prompt b is rows starts[b] to starts[b + 1], at most \
 * max_len long. out is [tokens, heads, head_size]. One task per (prompt, head), which       \
 * reads its keys and values once for all its queries; a row's result depends on its own   \
 * prompt only. */                                                                           \
void fw_encoder_attention_##SUFFIX(T *out, const T *query, int64_t q_stride, const T *key,         \
                                   const T *value, int64_t kv_stride, const int64_t *starts,        \
                                   int64_t seqs, int64_t heads, int64_t head_size, float scale,     \
                                   int64_t max_len) {                                               \
    const int64_t D = head_size;                                                                   \
    _Pragma("omp parallel if (seqs * heads > 1 && starts[seqs] * max_len >= 256)")                \
    {                                                                                              \
        float *scores = fw_scratch(sizeof(float) * (size_t)(max_len * max_len + 2 * max_len * D)); \
        float *q = scores + max_len * max_len, *acc = q + max_len * D;                             \
        int64_t *offsets = fw_scratch(sizeof(int64_t) * (size_t)max_len);                          \
        _Pragma("omp for collapse(2) schedule(dynamic, 1)")                                           \
        for (int64_t b = 0; b < seqs; b++) {                                                       \
            for (int64_t h = 0; h < heads; h++) {                                                  \
                const int64_t first = starts[b], n = starts[b + 1] - first;                        \
                for (int64_t j = 0; j < n; j++) {                                                  \
                    offsets[j] = (first + j) * kv_stride + h * D;                                  \
                    row_##SUFFIX(q + j * D, query + (first + j) * q_stride + h * D, D);            \
                }                                                                                  \
                for (int64_t i = 0; i < n * D; i++) q[i] *= scale;                                 \
                attend_##SUFFIX(q, key, value, offsets, n, n, D, max_len, 0.0f, scores, acc);      \
                for (int64_t i = 0; i < n; i++) {                                                  \
                    T *o = out + ((first + i) * heads + h) * D;                                    \
                    for (int64_t d = 0; d < D; d++) o[d] = STORE(acc[i * D + d]);                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(offsets);                                                                             \
        free(scores);                                                                              \
    }                                                                                              \
}

DEFINE_ENCODER(f32, float, f32_store)
DEFINE_ENCODER(bf16, uint16_t, bf16_store)
