/* fw's CPU kernels: shared definitions.
 *
 * At one or a few tokens per step a CPU forward pass is dominated by per-operation
 * overhead, not arithmetic: a rotary embedding written in torch is ten operations, a
 * paged attention a dozen. Each kernel here does one of those jobs in one call over raw
 * pointers, computing in float32 and rounding once on store; decoder.c chains them into
 * whole decoder layers.
 *
 * Element types: every kernel exists for float32 (suffix _f32) and bfloat16 (_bf16,
 * stored as uint16). Parallelism is OpenMP; the library links the libgomp torch already
 * loaded, so both share one thread pool.
 *
 * Built at first use by fw_kernels/cpu/build.py; no torch headers, so it compiles in
 * about a second.
 */
#ifndef FW_CPU_H
#define FW_CPU_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline float bf16_load(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}

static inline uint16_t bf16_store(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);  /* NaN stays NaN */
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);  /* round to nearest even */
}

static inline float f32_load(float x) { return x; }
static inline float f32_store(float x) { return x; }

/* exp(x) for x <= 88, vectorisable (glibc's expf is not without -ffast-math, which would
 * also switch the whole process to flush-to-zero). Relative error ~1e-7. */
static inline float fw_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { uint32_t u; float f; } scale;
    scale.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * scale.f;
}

/* GELU with the tanh approximation (transformers' gelu_pytorch_tanh), through fw_expf:
 * tanh(u) = 1 - 2 / (exp(2u) + 1). Absolute error ~1e-7. */
static inline float fw_gelu_tanh(float x) {
    const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (2.0f - 2.0f / (fw_expf(2.0f * u) + 1.0f));
}

/* Vector helpers over float32 rows; AVX-512 where the CPU has it (the library is built
 * with -march=native), plain loops elsewhere. */
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline void row_f32(float *restrict dst, const float *restrict src, int64_t n) {
    memcpy(dst, src, sizeof(float) * (size_t)n);
}

#if defined(__AVX512F__)
/* 16 bfloat16 values from p, widened to float32. */
static inline __m512 fw_widen_bf16(const uint16_t *p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
#endif

static inline void row_bf16(float *restrict dst, const uint16_t *restrict src, int64_t n) {
#if defined(__AVX512F__)
    if (n % 16 == 0) {
        for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(dst + i, fw_widen_bf16(src + i));
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_load(src[i]);
}

/* Sums in a fixed order: 16 lanes over the data, then the lanes, then the tail. The
 * compiler may not reorder them, so a result never depends on where the data sits in
 * memory (a vectorised `omp simd reduction` may peel for alignment and round differently
 * from one buffer to the next). */
#define FW_LANES 16
static inline float fw_lanes_sum(const float *lanes) {
    float total = 0.0f;
    for (int l = 0; l < FW_LANES; l++) total += lanes[l];
    return total;
}

#if defined(__AVX512F__)
/* The 16 horizontal sums of v[0..15], in order, in one vector: a transpose-and-add tree
 * (45 operations for 16 sums instead of ~8 dependent ones per sum). */
static inline __m512 fw_hsum16(__m512 *v) {
    __m512 w[8], x[4], y[2];
    for (int i = 0; i < 8; i++)
        w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(w[2 * i]), b = _mm512_castps_pd(w[2 * i + 1]);
        x[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    for (int i = 0; i < 2; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}
#endif

#if defined(__AVX512BF16__)
void fw_attend_rows_bf16(float *q, const uint16_t *key_cache, const uint16_t *value_cache, const int64_t *offsets,
                         int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, float *scores, float *acc);

/* The GEMMs' output tiles: 32 columns from n0 (of N), as two vectors of 16. */
typedef struct { __mmask16 lo, hi; __m512 bias_lo, bias_hi; } fw_columns32;

/* Masks for the columns that exist past n0, and their bf16 bias (zero without one). */
static inline fw_columns32 fw_columns32_at(const uint16_t *bias, int64_t N, int64_t n0) {
    const int64_t width = N - n0 < 32 ? N - n0 : 32;
    fw_columns32 c;
    c.lo = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
    c.hi = width >= 32 ? 0xFFFF : (width <= 16 ? 0 : (__mmask16)((1u << (width - 16)) - 1));
    c.bias_lo = c.bias_hi = _mm512_setzero_ps();
    if (bias) {
        c.bias_lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(c.lo, bias + n0)), 16));
        c.bias_hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(c.hi, bias + n0 + 16)), 16));
    }
    return c;
}

/* Stores lo/hi (bias not yet added) at column n0 of output row `row` (N columns): float32
 * with float_out, else rounded to bf16. */
static inline void fw_columns32_store(const fw_columns32 *c, void *out, int64_t row, int64_t N, int64_t n0,
                                      int64_t float_out, __m512 lo, __m512 hi) {
    lo = _mm512_add_ps(lo, c->bias_lo);
    hi = _mm512_add_ps(hi, c->bias_hi);
    if (float_out) {
        float *o = (float *)out + row * N + n0;
        _mm512_mask_storeu_ps(o, c->lo, lo);
        _mm512_mask_storeu_ps(o + 16, c->hi, hi);
    } else {
        uint16_t *o = (uint16_t *)out + row * N + n0;
        _mm256_mask_storeu_epi16(o, c->lo, (__m256i)_mm512_cvtneps_pbh(lo));
        _mm256_mask_storeu_epi16(o + 16, c->hi, (__m256i)_mm512_cvtneps_pbh(hi));
    }
}
#endif

/* Scratch memory aligned to a cache line. */
static inline void *fw_scratch(size_t bytes) {
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* The most input rows the quantized GEMVs take in one call. */
#define MAX_GEMV_ROWS 8

#define DECLARE_KERNELS(SUFFIX, T)                                                                 \
    void fw_add_rms_norm_##SUFFIX(const T *x, T *residual, const T *weight, T *out, int64_t rows, \
                                  int64_t hidden, float eps, float offset);                        \
    void fw_silu_and_mul_##SUFFIX(const T *x, T *out, int64_t rows, int64_t inter);               \
    void fw_gelu_tanh_and_mul_##SUFFIX(const T *x, T *out, int64_t rows, int64_t inter);          \
    void fw_rope_neox_##SUFFIX(T *x, int64_t row_stride, const int64_t *positions,                 \
                               const float *cos_sin, int64_t rows, int64_t heads, int64_t head_size, \
                               int64_t rotary_dim);                                                \
    void fw_write_kv_##SUFFIX(const T *key, int64_t key_stride, const T *value, int64_t value_stride, \
                              T *key_cache, T *value_cache, const int64_t *slots, int64_t rows,    \
                              int64_t width);                                                      \
    void fw_paged_decode_##SUFFIX(T *out, const T *query, int64_t q_stride, const T *key_cache,   \
                                  const T *value_cache, const int32_t *block_table,               \
                                  int64_t table_stride, const int32_t *seq_lens, int64_t seqs,     \
                                  int64_t kv_heads, int64_t group, int64_t head_size,              \
                                  int64_t block_size, float scale, int64_t window, float soft_cap, \
                                  int64_t max_len);                                                \
    void fw_int4_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q,             \
                               const uint16_t *params, const T *bias, int64_t M, int64_t N, int64_t K, \
                               int64_t float_out);                                                 \
    void fw_int8_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q,             \
                               const uint16_t *params, const T *bias, int64_t M, int64_t N, int64_t K, \
                               int64_t float_out);

DECLARE_KERNELS(f32, float)
DECLARE_KERNELS(bf16, uint16_t)

/* elementwise.c: greedy picks over float32 logits. */
void fw_argmax_f32(const float *x, int64_t rows, int64_t cols, int64_t *out);

/* dense.c: bf16 weights packed in panels; fw_dense_available() says whether this build has it. */
void fw_dense_gemm_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint16_t *panels,
                        const uint16_t *bias, int64_t M, int64_t N, int64_t K, int64_t float_out);
int fw_dense_available(void);

/* Memory that a compute-bound kernel can pull towards the core while it works: `count`
 * regions, the i-th of bytes[i] bytes at start[i] from each of two bases (a layer's keys
 * and values), of which this kernel takes those numbered [from, to) (keys 0 to count - 1,
 * then values count to 2 * count - 1). */
typedef struct { const char *base[2]; const int64_t *start, *bytes; int64_t count, from, to; } fw_prefetch_plan;

/* gemv.c: fw_int4_gemv / fw_int8_gemv (bits 4 or 8), prefetching `plan`'s regions (NULL:
 * none) between its multiply-adds. */
void fw_blocks_gemv_prefetching_f32(int64_t bits, float *out, const float *x, int64_t x_stride, const uint8_t *q,
                                    const uint16_t *params, const float *bias, int64_t M, int64_t N, int64_t K,
                                    int64_t float_out, const fw_prefetch_plan *plan);
void fw_blocks_gemv_prefetching_bf16(int64_t bits, uint16_t *out, const uint16_t *x, int64_t x_stride,
                                     const uint8_t *q, const uint16_t *params, const uint16_t *bias, int64_t M,
                                     int64_t N, int64_t K, int64_t float_out, const fw_prefetch_plan *plan);

/* igemm.c: W8A8 for batches, int8 weights per column in panels; fw_int8_gemm_available()
 * says whether this build has it. */
void fw_int8_gemm_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint8_t *panels,
                       const float *scales, const uint16_t *bias, int64_t M, int64_t N, int64_t K,
                       int64_t float_out);
/* The same, prefetching `plan`'s regions (NULL: none) a line at a time between its
 * multiply-adds. */
void fw_int8_gemm_prefetching_bf16(void *out, const uint16_t *x, int64_t x_stride, const uint8_t *panels,
                                   const float *scales, const uint16_t *bias, int64_t M, int64_t N, int64_t K,
                                   int64_t float_out, const fw_prefetch_plan *plan);
int fw_int8_gemm_available(void);

/* One projection of a decoder layer: int4 blocks for steps of up to int4_rows rows, or
 * 8-bit blocks for steps of up to q8_rows (gemv.c), and/or int8 panels with their column
 * scales (igemm.c) or dense bf16 panels (dense.c) for larger ones (NULL where absent),
 * and its bias (or NULL). */
typedef struct {
    const uint8_t *int4; const uint16_t *params; int64_t int4_rows;
    const uint8_t *q8; const uint16_t *q8_params; int64_t q8_rows;
    const uint8_t *int8; const float *scales; const uint16_t *dense; const void *bias;
} fw_projection;

/* projection.c: out = x @ W.T (+ bias) for `rows` rows, from the layout a step of
 * `step_rows` rows uses (int4 or 8-bit blocks up to their row limits, int8 or dense
 * panels beyond: the rule of the layer-by-layer path's PackedWeight), prefetching `plan`
 * (or NULL). */
void fw_project_f32(float *out, const float *x, int64_t x_stride, const fw_projection *p, int64_t rows,
                    int64_t step_rows, int64_t n, int64_t k, const fw_prefetch_plan *plan);
void fw_project_bf16(uint16_t *out, const uint16_t *x, int64_t x_stride, const fw_projection *p, int64_t rows,
                     int64_t step_rows, int64_t n, int64_t k, const fw_prefetch_plan *plan);

/* The gating activations between gate/up and down: act(gate) * up. */
enum { FW_ACT_SILU = 0, FW_ACT_GELU_TANH = 1 };

/* A mixture-of-experts MLP for moe.c: a router (model-dtype rows [experts, hidden], plain
 * dot products), the top_k experts per token (their softmax weights renormalised to sum
 * to one when `renormalize`), each expert's merged gate/up and down projections, and an
 * optional shared expert whose output is scaled by sigmoid(x . shared_gate) (Qwen2-MoE;
 * shared_gate NULL: unscaled). */
typedef struct {
    int64_t experts, top_k, renormalize, intermediate, shared_intermediate, activation;
    const void *router;
    const fw_projection *gate_up, *down;  /* [experts] */
    fw_projection shared_gate_up, shared_down;
    const void *shared_gate;
} fw_moe;

/* moe.c: out = the MoE MLP of x [rows, hidden]. Tokens are grouped by expert, so each
 * expert's projections run once for all its tokens; a token's result is its experts'
 * outputs summed in float32 in the order of their weights, rounded once. */
void fw_moe_f32(const fw_moe *moe, const float *x, float *out, int64_t rows, int64_t hidden);
void fw_moe_bf16(const fw_moe *moe, const uint16_t *x, uint16_t *out, int64_t rows, int64_t hidden);

/* One decoder layer for decoder.c: norms in the model dtype (the q/k norms of Qwen3 and
 * Gemma 3, the norms of the attention and MLP outputs before their residual add of
 * Gemma 2/3: NULL when absent), the projections (gate_up/down, or a mixture of experts),
 * the layer's KV cache, rotary table (float32 [positions, rotary_dim]) and sliding window
 * (0: none). */
typedef struct {
    const void *input_norm, *post_norm, *q_norm, *k_norm, *attn_out_norm, *mlp_out_norm;
    fw_projection qkv, o, gate_up, down;
    const fw_moe *moe;
    void *key_cache, *value_cache;
    const float *cos_sin;
    int64_t window;
} fw_decoder_layer;

/* A whole pre-norm decoder stack (RMSNorm times offset + weight, a gated MLP, neox rotary).
 * kv_kind: the KV caches' codes (kv_quant.h: 0 the model dtype, 1 int8, 2 fp8 e4m3 with
 * kv_dynamic scales or 1.0). */
typedef struct {
    int64_t layers, hidden, heads, kv_heads, head_size, intermediate, rotary_dim, block_size, activation;
    float eps, norm_offset, scale, soft_cap;
    const void *final_norm;
    const fw_decoder_layer *layer;
    int64_t kv_kind, kv_dynamic;
} fw_decoder;

#endif
