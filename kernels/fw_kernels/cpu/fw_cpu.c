/* fw's CPU kernels: the small per-layer operations of a decode step, fused.
 *
 * At one or a few tokens per step a CPU forward pass is dominated by per-operation
 * overhead, not arithmetic: a rotary embedding written in torch is ten operations, a
 * paged attention a dozen. Each function here does one of those jobs in one call over
 * raw pointers, computing in float32 and rounding once on store.
 *
 * Element types: every function exists for float32 (suffix _f32) and bfloat16 (_bf16,
 * stored as uint16). Parallelism is OpenMP; the library links the libgomp torch already
 * loaded, so both share one thread pool.
 *
 * Built at first use by fw_kernels/cpu/build.py; no torch headers, so it compiles in
 * about a second.
 */
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

/* Vector helpers over float32 rows; AVX-512 where the CPU has it (the library is built
 * with -march=native), plain loops elsewhere. */
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline void row_f32(float *restrict dst, const float *restrict src, int64_t n) {
    memcpy(dst, src, sizeof(float) * (size_t)n);
}

static inline void row_bf16(float *restrict dst, const uint16_t *restrict src, int64_t n) {
#if defined(__AVX512F__)
    if (n % 16 == 0) {
        for (int64_t i = 0; i < n; i += 16) {
            __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
            _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
        }
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_load(src[i]);
}

/* One (sequence, kv head) of decode attention: the G queries q [G, D] (already scaled)
 * over the n cached rows at cache + offsets[j]; writes the result to acc [G, D]. scores is
 * scratch [G, stride]. The vector path fixes D at compile time so the row lives in
 * registers; other head sizes take the plain loops. */
#define DEFINE_ATTEND(SUFFIX, T, LOAD, VLOAD)                                                      \
static inline __attribute__((always_inline)) void attend_rows_##SUFFIX(                            \
        const float *q, const T *key_cache, const T *value_cache, const int64_t *offsets,           \
        int64_t n, int64_t G, const int64_t D, int64_t stride, float soft_cap, float *scores,       \
        float *acc) {                                                                              \
    for (int64_t g = 0; g < G; g++) {                                                              \
        const float *qg = q + g * D;                                                               \
        float *sc = scores + g * stride;                                                           \
        VECTOR_SCORES(T, VLOAD)                                                                    \
        if (soft_cap > 0.0f) for (int64_t j = 0; j < n; j++) sc[j] = soft_cap * tanhf(sc[j] / soft_cap); \
        float top = -INFINITY, total = 0.0f;                                                       \
        for (int64_t j = 0; j < n; j++) top = sc[j] > top ? sc[j] : top;                           \
        _Pragma("omp simd reduction(+ : total)")                                                   \
        for (int64_t j = 0; j < n; j++) { sc[j] = fw_expf(sc[j] - top); total += sc[j]; }         \
        const float inv = 1.0f / total;                                                            \
        float *ag = acc + g * D;                                                                   \
        VECTOR_VALUES(T, VLOAD)                                                                    \
    }                                                                                              \
}                                                                                                  \
static void attend_##SUFFIX(const float *q, const T *key_cache, const T *value_cache,              \
                            const int64_t *offsets, int64_t n, int64_t G, int64_t D, int64_t stride, \
                            float soft_cap, float *scores, float *acc) {                           \
    if (HAVE_VECTORS && D == 64)                                                                   \
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
static inline __m512 vload_bf16(const uint16_t *p) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
/* The 16 horizontal sums of v[0..15], in order, in one vector: a transpose-and-add tree
 * (45 operations for 16 sums instead of ~8 dependent ones per sum). */
static inline __m512 hsum16(__m512 *v) {
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
/* scores: D / 16 query vectors in registers; rows 16 at a time, summed by hsum16 */
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
        _mm512_storeu_ps(sc + j, hsum16(part));                                                    \
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
#define vload_bf16 NULL
#endif

DEFINE_ATTEND_PLAIN(f32, float, f32_load)
DEFINE_ATTEND_PLAIN(bf16, uint16_t, bf16_load)
#if HAVE_VECTORS
DEFINE_ATTEND(f32, float, f32_load, vload_f32)
DEFINE_ATTEND(bf16, uint16_t, bf16_load, vload_bf16)
#else
#define attend_f32 attend_plain_f32
#define attend_bf16 attend_plain_bf16
#endif


/* Weight-only quantized matrix-vector products for one to four input rows: the decode
 * step's linears, bound by the bytes of weight they read. Both formats group 32 input
 * weights per output row:
 *   int4: 16 bytes (low nibble = element j, high nibble = element j + 16) and float32
 *         (scale, min); w = q * scale + min, q in 0..15 (GGUF's Q4_1, regrouped)
 *   int8: 32 signed bytes and a float32 scale; w = q * scale (GGUF's Q8_0)
 * x is converted to float32 once; each thread takes a share of the output rows. */
#define MAX_GEMV_ROWS 4

#if defined(__AVX512F__)
/* ROWS output rows at once (independent chains for the out-of-order core, shared loads
 * of x); r[row * M + m]. */
#define INT4_BLOCK 4
static inline __attribute__((always_inline)) void int4_rows(const float *restrict x, const float *restrict xsum,
                                                            const uint8_t *restrict q, const float *restrict sm,
                                                            int64_t K, const int M, const int ROWS, float *r) {
    const int64_t groups = K / 32;
    const __m512i nibble = _mm512_set1_epi32(15);
    __m512 acc[INT4_BLOCK][MAX_GEMV_ROWS];
    float mins[INT4_BLOCK][MAX_GEMV_ROWS];
    for (int i = 0; i < ROWS; i++)
        for (int m = 0; m < M; m++) { acc[i][m] = _mm512_setzero_ps(); mins[i][m] = 0.0f; }
    for (int64_t g = 0; g < groups; g++) {
        __m512 xlo[MAX_GEMV_ROWS], xhi[MAX_GEMV_ROWS];
        for (int m = 0; m < M; m++) {
            xlo[m] = _mm512_loadu_ps(x + m * K + g * 32);
            xhi[m] = _mm512_loadu_ps(x + m * K + g * 32 + 16);
        }
        for (int i = 0; i < ROWS; i++) {
            const float *p = sm + (g * INT4_BLOCK + i) * 2;
            __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + (g * INT4_BLOCK + i) * 16)));
            __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, nibble));
            __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4));
            __m512 scale = _mm512_set1_ps(p[0]);
            for (int m = 0; m < M; m++) {
                acc[i][m] = _mm512_fmadd_ps(scale, _mm512_fmadd_ps(hi, xhi[m], _mm512_mul_ps(lo, xlo[m])), acc[i][m]);
                mins[i][m] += p[1] * xsum[m * groups + g];
            }
        }
    }
    for (int i = 0; i < ROWS; i++)
        for (int m = 0; m < M; m++) r[i * M + m] = _mm512_reduce_add_ps(acc[i][m]) + mins[i][m];
}

static inline __attribute__((always_inline)) void int8_rows(const float *restrict x, const int8_t *restrict q,
                                                            const float *restrict sc, int64_t K, const int M,
                                                            const int ROWS, float *r) {
    const int64_t groups = K / 32;
    __m512 acc[INT4_BLOCK][MAX_GEMV_ROWS];
    for (int i = 0; i < ROWS; i++)
        for (int m = 0; m < M; m++) acc[i][m] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        __m512 xlo[MAX_GEMV_ROWS], xhi[MAX_GEMV_ROWS];
        for (int m = 0; m < M; m++) {
            xlo[m] = _mm512_loadu_ps(x + m * K + g * 32);
            xhi[m] = _mm512_loadu_ps(x + m * K + g * 32 + 16);
        }
        for (int i = 0; i < ROWS; i++) {
            const int8_t *qg = q + (g * INT4_BLOCK + i) * 32;
            __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qg)));
            __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(qg + 16))));
            __m512 scale = _mm512_set1_ps(sc[g * INT4_BLOCK + i]);
            for (int m = 0; m < M; m++)
                acc[i][m] = _mm512_fmadd_ps(scale, _mm512_fmadd_ps(hi, xhi[m], _mm512_mul_ps(lo, xlo[m])), acc[i][m]);
        }
    }
    for (int i = 0; i < ROWS; i++)
        for (int m = 0; m < M; m++) r[i * M + m] = _mm512_reduce_add_ps(acc[i][m]);
}
#else
#define INT4_BLOCK 4
static void int4_rows(const float *x, const float *xsum, const uint8_t *q, const float *sm, int64_t K,
                      const int M, const int ROWS, float *r) {
    const int64_t groups = K / 32;
    for (int i = 0; i < ROWS; i++) {
        for (int m = 0; m < M; m++) {
            float total = 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                const float *xm = x + m * K + g * 32, *p = sm + (g * INT4_BLOCK + i) * 2;
                const uint8_t *qg = q + (g * INT4_BLOCK + i) * 16;
                float dot = 0.0f;
                for (int j = 0; j < 16; j++) dot += (qg[j] & 15) * xm[j] + (qg[j] >> 4) * xm[j + 16];
                total += p[0] * dot + p[1] * xsum[m * groups + g];
            }
            r[i * M + m] = total;
        }
    }
}

static void int8_rows(const float *x, const int8_t *q, const float *sc, int64_t K, const int M, const int ROWS,
                      float *r) {
    const int64_t groups = K / 32;
    for (int i = 0; i < ROWS; i++) {
        for (int m = 0; m < M; m++) {
            float total = 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                float dot = 0.0f;
                for (int j = 0; j < 32; j++) dot += q[(g * INT4_BLOCK + i) * 32 + j] * x[m * K + g * 32 + j];
                total += sc[g * INT4_BLOCK + i] * dot;
            }
            r[i * M + m] = total;
        }
    }
}
#endif

/* The rows' work with M fixed at compile time, so the accumulators stay in registers. */
#define GEMV_DISPATCH(CALL)                                                                        \
    switch (M) {                                                                                   \
    case 1: CALL(1); break;                                                                        \
    case 2: CALL(2); break;                                                                        \
    case 3: CALL(3); break;                                                                        \
    default: CALL(4); break;                                                                       \
    }

#define INT4_CALL(M_) int4_rows(xf, xsum, qn, smn, K, M_, INT4_BLOCK, r)
#define INT8_CALL(M_) int8_rows(xf, qn, scn, K, M_, INT4_BLOCK, r)

#define DEFINE_KERNELS(SUFFIX, T, LOAD, STORE)                                                     \
                                                                                                   \
/* residual += x (when residual is given); out = rms_norm(residual or x) * weight. */              \
void fw_add_rms_norm_##SUFFIX(const T *x, T *residual, const T *weight, T *out, int64_t rows,     \
                              int64_t hidden, float eps) {                                         \
    _Pragma("omp parallel for if (rows >= 8) schedule(static)")                                   \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        const T *xr = x + t * hidden;                                                              \
        T *rr = residual ? residual + t * hidden : NULL;                                           \
        T *o = out + t * hidden;                                                                   \
        float sum = 0.0f;                                                                          \
        if (rr) {                                                                                  \
            _Pragma("omp simd reduction(+ : sum)")                                                 \
            for (int64_t i = 0; i < hidden; i++) {                                                 \
                T s = STORE(LOAD(xr[i]) + LOAD(rr[i]));                                            \
                rr[i] = s;                                                                         \
                float v = LOAD(s);                                                                 \
                sum += v * v;                                                                      \
            }                                                                                      \
        } else {                                                                                   \
            _Pragma("omp simd reduction(+ : sum)")                                                 \
            for (int64_t i = 0; i < hidden; i++) { float v = LOAD(xr[i]); sum += v * v; }          \
        }                                                                                          \
        const T *src = rr ? rr : xr;                                                               \
        float inv = 1.0f / sqrtf(sum / (float)hidden + eps);                                       \
        _Pragma("omp simd")                                                                        \
        for (int64_t i = 0; i < hidden; i++) o[i] = STORE(LOAD(src[i]) * inv * LOAD(weight[i]));   \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* out[t] = silu(x[t, :inter]) * x[t, inter:] */                                                   \
void fw_silu_and_mul_##SUFFIX(const T *x, T *out, int64_t rows, int64_t inter) {                   \
    _Pragma("omp parallel for if (rows >= 4) schedule(static)")                                   \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        const T *gate = x + t * 2 * inter, *up = gate + inter;                                     \
        T *o = out + t * inter;                                                                    \
        _Pragma("omp simd")                                                                        \
        for (int64_t i = 0; i < inter; i++) {                                                      \
            float g = LOAD(gate[i]);                                                               \
            o[i] = STORE(g / (1.0f + fw_expf(-g)) * LOAD(up[i]));                                  \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* Rotates, in place, `heads` heads of `head_size` starting at x + t * row_stride for every   \
 * token t (neox layout: the two halves of the first rotary_dim lanes rotate together).       \
 * cos_sin[p] holds rotary_dim / 2 cosines then as many sines, in float32. */                     \
void fw_rope_neox_##SUFFIX(T *x, int64_t row_stride, const int64_t *positions,                     \
                           const float *cos_sin, int64_t rows, int64_t heads, int64_t head_size,   \
                           int64_t rotary_dim) {                                                   \
    int64_t half = rotary_dim / 2;                                                                 \
    _Pragma("omp parallel for if (rows >= 8) schedule(static)")                                   \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        const float *cs = cos_sin + positions[t] * rotary_dim, *sn = cs + half;                    \
        for (int64_t h = 0; h < heads; h++) {                                                      \
            T *p = x + t * row_stride + h * head_size;                                             \
            _Pragma("omp simd")                                                                    \
            for (int64_t i = 0; i < half; i++) {                                                   \
                float a = LOAD(p[i]), b = LOAD(p[i + half]);                                       \
                p[i] = STORE(a * cs[i] - b * sn[i]);                                               \
                p[i + half] = STORE(b * cs[i] + a * sn[i]);                                        \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* Stores key/value rows [T, kv_heads * head_size] (row strides given) at their cache slots; \
 * caches are [blocks * block_size, kv_heads * head_size]. Negative slots are skipped. */          \
void fw_write_kv_##SUFFIX(const T *key, int64_t key_stride, const T *value, int64_t value_stride, \
                          T *key_cache, T *value_cache, const int64_t *slots, int64_t rows,        \
                          int64_t width) {                                                         \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        if (slots[t] < 0) continue;                                                                \
        memcpy(key_cache + slots[t] * width, key + t * key_stride, width * sizeof(T));             \
        memcpy(value_cache + slots[t] * width, value + t * value_stride, width * sizeof(T));       \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
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
        float *scores = malloc(sizeof(float) * (size_t)(G * max_len + 2 * G * D));                 \
        float *q = scores + G * max_len, *acc = q + G * D;                                         \
        int64_t *offsets = malloc(sizeof(int64_t) * (size_t)max_len);                              \
        _Pragma("omp for collapse(2) schedule(static)")                                           \
        for (int64_t b = 0; b < seqs; b++) {                                                       \
            for (int64_t h = 0; h < kv_heads; h++) {                                               \
                const int64_t len = seq_lens[b];                                                   \
                const int64_t first = (window > 0 && len > window) ? len - window : 0;             \
                const int64_t n = len - first;                                                     \
                const int32_t *table = block_table + b * table_stride;                             \
                for (int64_t j = 0; j < n; j++) {                                                  \
                    int64_t pos = first + j;                                                       \
                    offsets[j] = ((int64_t)table[pos / block_size] * block_size + pos % block_size) \
                                 * token_stride + h * D;                                           \
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
}                                                                                                   \
/* out [M, N] = x [M, K] (row stride x_stride) @ W.T (+ bias), W int4 as described above;    \
 * M <= MAX_GEMV_ROWS, K a multiple of 32. */                                                     \
void fw_int4_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q, const float *sm,  \
                           const T *bias, int64_t M, int64_t N, int64_t K) {                       \
    const int64_t groups = K / 32;                                                                 \
    float *xf = malloc(sizeof(float) * (size_t)(M * K + M * groups));                              \
    float *xsum = xf + M * K;                                                                      \
    for (int64_t m = 0; m < M; m++) {                                                              \
        row_##SUFFIX(xf + m * K, x + m * x_stride, K);                                             \
        for (int64_t g = 0; g < groups; g++) {                                                     \
            float s = 0.0f;                                                                        \
            for (int j = 0; j < 32; j++) s += xf[m * K + g * 32 + j];                              \
            xsum[m * groups + g] = s;                                                              \
        }                                                                                          \
    }                                                                                              \
    _Pragma("omp parallel for if (N * K >= 65536) schedule(static)")                              \
    for (int64_t n0 = 0; n0 < N; n0 += INT4_BLOCK) {                                               \
        float r[INT4_BLOCK * MAX_GEMV_ROWS];                                                       \
        const int rows = N - n0 < INT4_BLOCK ? (int)(N - n0) : INT4_BLOCK;                         \
        const uint8_t *qn = q + n0 * groups * 16;                                                  \
        const float *smn = sm + n0 * groups * 2;                                                   \
        GEMV_DISPATCH(INT4_CALL)                                                                   \
        for (int i = 0; i < rows; i++) {                                                           \
            float b = bias ? LOAD(bias[n0 + i]) : 0.0f;                                            \
            for (int64_t m = 0; m < M; m++) out[m * N + n0 + i] = STORE(r[i * M + m] + b);         \
        }                                                                                          \
    }                                                                                              \
    free(xf);                                                                                      \
}                                                                                                  \
                                                                                                   \
/* out [M, N] = x [M, K] @ W.T (+ bias), W int8 blocks as described above. */                     \
void fw_int8_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const int8_t *q, const float *sc,   \
                           const T *bias, int64_t M, int64_t N, int64_t K) {                       \
    const int64_t groups = K / 32;                                                                 \
    float *xf = malloc(sizeof(float) * (size_t)(M * K));                                           \
    for (int64_t m = 0; m < M; m++) row_##SUFFIX(xf + m * K, x + m * x_stride, K);                 \
    _Pragma("omp parallel for if (N * K >= 65536) schedule(static)")                              \
    for (int64_t n0 = 0; n0 < N; n0 += INT4_BLOCK) {                                               \
        float r[INT4_BLOCK * MAX_GEMV_ROWS];                                                       \
        const int rows = N - n0 < INT4_BLOCK ? (int)(N - n0) : INT4_BLOCK;                         \
        const int8_t *qn = q + n0 * K;                                                             \
        const float *scn = sc + n0 * groups;                                                       \
        GEMV_DISPATCH(INT8_CALL)                                                                   \
        for (int i = 0; i < rows; i++) {                                                           \
            float b = bias ? LOAD(bias[n0 + i]) : 0.0f;                                            \
            for (int64_t m = 0; m < M; m++) out[m * N + n0 + i] = STORE(r[i * M + m] + b);         \
        }                                                                                          \
    }                                                                                              \
    free(xf);                                                                                      \
}

DEFINE_KERNELS(f32, float, f32_load, f32_store)
DEFINE_KERNELS(bf16, uint16_t, bf16_load, bf16_store)
