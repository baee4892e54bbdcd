/* Weight-only quantized matrix products: the decode step's linears, bound by the bytes of
 * weight they read, MAX_GEMV_ROWS input rows at a time (more rows pass over each tile of
 * weights while it is in cache, so a prompt reads the weights from memory once).
 *
 * Both formats hold, per output row, groups of 32 input weights as unsigned levels u with
 * a float16 scale and minimum (as GGUF does), w = u * scale + min:
 *   int4: 16 bytes, low nibble = element j, high nibble = element j + 16 (GGUF's Q4_1)
 *   int8: 32 bytes, u = q + 128 and min = -128 * scale (GGUF's Q8_0, q in -127..127)
 * Blocks of INT4_BLOCK output rows are interleaved group by group (levels [rows / 4]
 * [groups][4][bytes], parameters [rows / 4][groups][4][scale, min]), so each thread reads
 * one sequential stream; packing.py writes this layout.
 *
 * Two ways to multiply:
 *   float: x in float32, each group's levels converted to float (exact for any input);
 *   int8 dot products (AVX512-VNNI, bfloat16 inputs): x quantized per group of 32 to int8
 *     with its own scale, as llama.cpp does for these formats, and multiplied with the
 *     levels by vpdpbusd, 64 multiply-adds per instruction. bfloat16 activations carry
 *     ~0.4% error already; this adds about as much, and is 3x+ faster.
 */
#include "fw_cpu.h"

#define INT4_BLOCK 4
/* input rows per sweep of the float path (its accumulators must fit in registers) */
#define GEMV_PASS 4
/* weight rows per tile (8 blocks: at K = 2048, 64 KB of 8-bit levels stay in L2) */
#define GEMV_TILE 32

/* One group's 32 levels as float32 (elements 0..15 in lo, 16..31 in hi). */
#if defined(__AVX512F__)
static inline __attribute__((always_inline)) void levels_f32(const int BITS, const uint8_t *q, __m512 *lo, __m512 *hi) {
    if (BITS == 4) {
        __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
        *lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(15)));
        *hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4));
    } else {
        *lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q)));
        *hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 16))));
    }
}

/* The float path for M (<= GEMV_PASS) input rows and the 4 weight rows of a block:
 * r[i * MAX_GEMV_ROWS + m] for weight row i, input row m. */
static inline __attribute__((always_inline)) void float_rows(const int BITS, const float *restrict x,
                                                             const float *restrict xsum, const uint8_t *restrict q,
                                                             const uint16_t *restrict params, int64_t K, const int M,
                                                             float *r) {
    const int64_t groups = K / 32, group_bytes = BITS * 4;
    __m512 acc[INT4_BLOCK][GEMV_PASS];
    float mins[INT4_BLOCK][GEMV_PASS];
    for (int i = 0; i < INT4_BLOCK; i++)
        for (int m = 0; m < M; m++) { acc[i][m] = _mm512_setzero_ps(); mins[i][m] = 0.0f; }
    for (int64_t g = 0; g < groups; g++) {
        __m512 xlo[GEMV_PASS], xhi[GEMV_PASS];
        for (int m = 0; m < M; m++) {
            xlo[m] = _mm512_loadu_ps(x + m * K + g * 32);
            xhi[m] = _mm512_loadu_ps(x + m * K + g * 32 + 16);
        }
        for (int i = 0; i < INT4_BLOCK; i++) {
            const uint16_t *p = params + (g * INT4_BLOCK + i) * 2;
            __m512 lo, hi;
            levels_f32(BITS, q + (g * INT4_BLOCK + i) * group_bytes, &lo, &hi);
            __m512 scale = _mm512_set1_ps(_cvtsh_ss(p[0]));
            const float low = _cvtsh_ss(p[1]);
            for (int m = 0; m < M; m++) {
                acc[i][m] = _mm512_fmadd_ps(scale, _mm512_fmadd_ps(hi, xhi[m], _mm512_mul_ps(lo, xlo[m])), acc[i][m]);
                mins[i][m] += low * xsum[m * groups + g];
            }
        }
    }
    for (int i = 0; i < INT4_BLOCK; i++)
        for (int m = 0; m < M; m++) r[i * MAX_GEMV_ROWS + m] = _mm512_reduce_add_ps(acc[i][m]) + mins[i][m];
}
#else
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023;
    union { uint32_t u; float f; } v;
    if (exp == 0) return (sign ? -1.0f : 1.0f) * ldexpf((float)man, -24);
    v.u = sign | (exp == 31 ? 0x7f800000u | (man << 13) : ((exp + 112) << 23) | (man << 13));
    return v.f;
}

static void float_rows(const int BITS, const float *x, const float *xsum, const uint8_t *q, const uint16_t *params,
                       int64_t K, const int M, float *r) {
    const int64_t groups = K / 32, group_bytes = BITS * 4;
    for (int i = 0; i < INT4_BLOCK; i++) {
        for (int m = 0; m < M; m++) {
            float total = 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                const float *xm = x + m * K + g * 32;
                const uint16_t *p = params + (g * INT4_BLOCK + i) * 2;
                const uint8_t *qg = q + (g * INT4_BLOCK + i) * group_bytes;
                float dot = 0.0f;
                for (int j = 0; j < 16; j++) {
                    float lo = BITS == 4 ? (qg[j] & 15) : qg[j], hi = BITS == 4 ? (qg[j] >> 4) : qg[j + 16];
                    dot += lo * xm[j] + hi * xm[j + 16];
                }
                total += half_to_float(p[0]) * dot + half_to_float(p[1]) * xsum[m * groups + g];
            }
            r[i * MAX_GEMV_ROWS + m] = total;
        }
    }
}
#endif

#define FLOAT_CALL(M_, m0) float_rows(BITS, xf + (m0) * K, xsum + (m0) * groups, qn, pn, K, M_, r + (m0))

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define HAVE_VNNI 1

/* x [M, K] float32 -> int8 per group of 32 (xq), the groups' scales (dx) and their
 * float32 sums (xsum, for the minimum term). */
static void quantize_rows(const float *x, int64_t M, int64_t K, int8_t *xq, float *dx, float *xsum) {
    const int64_t groups = K / 32;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t g = 0; g < groups; g++) {
            const float *v = x + m * K + g * 32;
            __m512 a = _mm512_loadu_ps(v), b = _mm512_loadu_ps(v + 16);
            float top = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
            float d = top / 127.0f, inv = top > 0.0f ? 127.0f / top : 0.0f;
            __m512 s = _mm512_set1_ps(inv);
            _mm_storeu_si128((__m128i *)(xq + m * K + g * 32), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, s))));
            _mm_storeu_si128((__m128i *)(xq + m * K + g * 32 + 16), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(b, s))));
            dx[m * groups + g] = d;
            xsum[m * groups + g] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
        }
    }
}

/* The sum of each run of `width` lanes of v, for the 16 / width weight rows it holds. */
static inline void lane_sums(__m512 v, int width, float *out) {
    float lanes[16];
    _mm512_storeu_ps(lanes, v);
    for (int row = 0; row < 16 / width; row++) {
        float total = 0.0f;
        for (int l = 0; l < width; l++) total += lanes[row * width + l];
        out[row] = total;
    }
}

/* int4, 4 weight rows per 64-byte load: lanes 4i..4i+3 of a vector belong to weight row i. */
static inline __attribute__((always_inline)) void vnni_int4_rows(const int8_t *xq, const float *dx,
                                                                 const float *xsum, int64_t K, const uint8_t *q,
                                                                 const uint16_t *params, const int M, float *r) {
    const int64_t groups = K / 32;
    const __m512i nibble = _mm512_set1_epi8(15);
    const __m512i scale_at = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
    const __m512i min_at = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
    __m512 acc[MAX_GEMV_ROWS];
    for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        __m512i w = _mm512_loadu_si512(q + g * 64);
        __m512i lo = _mm512_and_si512(w, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), nibble);
        __m512 p = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(params + g * 8))));
        __m512 scale = _mm512_permutexvar_ps(scale_at, p);
        __m512 low = _mm512_maskz_permutexvar_ps(0x1111, min_at, p);  /* once per row, in its first lane */
        for (int m = 0; m < M; m++) {
            const int8_t *xg = xq + m * K + g * 32;
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xg)));
            s = _mm512_dpbusd_epi32(s, hi, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xg + 16))));
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(scale, _mm512_set1_ps(dx[m * groups + g])), acc[m]);
            acc[m] = _mm512_fmadd_ps(low, _mm512_set1_ps(xsum[m * groups + g]), acc[m]);
        }
    }
    for (int m = 0; m < M; m++) {
        float rows[4];
        lane_sums(acc[m], 4, rows);
        for (int i = 0; i < 4; i++) r[i * MAX_GEMV_ROWS + m] = rows[i];
    }
}

/* int8, 2 weight rows per 64-byte load: lanes 8i..8i+7 belong to the load's row i. */
static inline __attribute__((always_inline)) void vnni_int8_rows(const int8_t *xq, const float *dx,
                                                                 const float *xsum, int64_t K, const uint8_t *q,
                                                                 const uint16_t *params, const int M, float *r) {
    const int64_t groups = K / 32;
    const __m512i scale_at[2] = {_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                                 _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6)};
    const __m512i min_at[2] = {_mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
                               _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7)};
    __m512 acc[2][MAX_GEMV_ROWS];
    for (int m = 0; m < M; m++) acc[0][m] = acc[1][m] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        __m512 p = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(params + g * 8))));
        for (int half = 0; half < 2; half++) {
            __m512i w = _mm512_loadu_si512(q + g * 128 + half * 64);
            __m512 scale = _mm512_permutexvar_ps(scale_at[half], p);
            __m512 low = _mm512_maskz_permutexvar_ps(0x0101, min_at[half], p);
            for (int m = 0; m < M; m++) {
                const int8_t *xg = xq + m * K + g * 32;
                __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w,
                                                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xg)));
                acc[half][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(scale, _mm512_set1_ps(dx[m * groups + g])), acc[half][m]);
                acc[half][m] = _mm512_fmadd_ps(low, _mm512_set1_ps(xsum[m * groups + g]), acc[half][m]);
            }
        }
    }
    for (int m = 0; m < M; m++) {
        float rows[4];
        lane_sums(acc[0][m], 8, rows);
        lane_sums(acc[1][m], 8, rows + 2);
        for (int i = 0; i < 4; i++) r[i * MAX_GEMV_ROWS + m] = rows[i];
    }
}

#define VNNI_CALL(M_)                                                                              \
    (BITS == 4 ? vnni_int4_rows(xq, dx, xsum, K, qn, pn, M_, r) : vnni_int8_rows(xq, dx, xsum, K, qn, pn, M_, r))
#else
#define HAVE_VNNI 0
#endif

/* out [M, N] = x [M, K] (row stride x_stride) @ W.T (+ bias) for W in the BITS format;
 * K a multiple of 32, any M. VNNI: whether to quantize x and use int8 dot products
 * (bfloat16 inputs on a CPU that has them). Weight rows go in tiles of GEMV_TILE: each
 * chunk of up to MAX_GEMV_ROWS input rows passes over a tile while its blocks are in
 * cache, so more rows than a chunk read the weights from memory once, not once per
 * chunk. A row's result is the same whatever rows are beside it. */
#define DEFINE_GEMV(SUFFIX, T, LOAD, STORE, VNNI)                                                 \
static void gemv_##SUFFIX(const int BITS, T *out, const T *x, int64_t x_stride, const uint8_t *q,  \
                          const uint16_t *params, const T *bias, int64_t M, int64_t N, int64_t K,  \
                          int64_t float_out) {                                                     \
    const int64_t groups = K / 32, block_bytes = INT4_BLOCK * K * BITS / 8;                        \
    float *xf_all = fw_scratch(sizeof(float) * (size_t)(M * K + 3 * M * groups) + (size_t)(M * K)); \
    float *xsum_all = xf_all + M * K, *dx_all = xsum_all + M * groups;                             \
    int8_t *xq_all = (int8_t *)(dx_all + M * groups);                                              \
    for (int64_t m = 0; m < M; m++) {                                                              \
        row_##SUFFIX(xf_all + m * K, x + m * x_stride, K);                                         \
        if (!(VNNI)) {                                                                             \
            for (int64_t g = 0; g < groups; g++) {                                                 \
                float lanes[FW_LANES] = {0};                                                       \
                for (int h = 0; h < 32; h += FW_LANES)                                             \
                    for (int l = 0; l < FW_LANES; l++) lanes[l] += xf_all[m * K + g * 32 + h + l]; \
                xsum_all[m * groups + g] = fw_lanes_sum(lanes);                                    \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    VNNI_QUANTIZE(VNNI)                                                                            \
    _Pragma("omp parallel for if (N * K >= 65536) schedule(static)")                              \
    for (int64_t t0 = 0; t0 < N; t0 += GEMV_TILE) {                                                \
        const int64_t t1 = t0 + GEMV_TILE < N ? t0 + GEMV_TILE : N;                                \
        for (int64_t c0 = 0; c0 < M; c0 += MAX_GEMV_ROWS) {                                        \
            const int64_t MC = M - c0 < MAX_GEMV_ROWS ? M - c0 : MAX_GEMV_ROWS;                    \
            const float *xf = xf_all + c0 * K, *xsum = xsum_all + c0 * groups, *dx = dx_all + c0 * groups; \
            const int8_t *xq = xq_all + c0 * K;                                                    \
            (void)dx; (void)xq;                                                                    \
            for (int64_t n0 = t0; n0 < t1; n0 += INT4_BLOCK) {                                     \
                float r[INT4_BLOCK * MAX_GEMV_ROWS];                                               \
                const int rows = N - n0 < INT4_BLOCK ? (int)(N - n0) : INT4_BLOCK;                 \
                const uint8_t *qn = q + n0 / INT4_BLOCK * block_bytes;                             \
                const uint16_t *pn = params + n0 / INT4_BLOCK * groups * INT4_BLOCK * 2;           \
                if (VNNI) { VNNI_PASS }                                                            \
                else {                                                                             \
                    for (int64_t m0 = 0; m0 < MC; m0 += GEMV_PASS) {                               \
                        switch (MC - m0) {                                                         \
                        case 1: FLOAT_CALL(1, m0); break;                                          \
                        case 2: FLOAT_CALL(2, m0); break;                                          \
                        case 3: FLOAT_CALL(3, m0); break;                                          \
                        default: FLOAT_CALL(4, m0); break;                                         \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                for (int i = 0; i < rows; i++) {                                                   \
                    float b = bias ? LOAD(bias[n0 + i]) : 0.0f;                                    \
                    for (int64_t m = 0; m < MC; m++) {                                             \
                        const float value = r[i * MAX_GEMV_ROWS + m] + b;                          \
                        if (float_out) ((float *)out)[(c0 + m) * N + n0 + i] = value;              \
                        else out[(c0 + m) * N + n0 + i] = STORE(value);                            \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    free(xf_all);                                                                                  \
}                                                                                                  \
                                                                                                   \
/* float_out: out is float32 [M, N] (an LM head's logits, a tensor-parallel shard's partial  \
 * sums keep their float32 sums). */                                                              \
void fw_int4_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q, const uint16_t *params, \
                           const T *bias, int64_t M, int64_t N, int64_t K, int64_t float_out) {    \
    gemv_##SUFFIX(4, out, x, x_stride, q, params, bias, M, N, K, float_out);                       \
}                                                                                                  \
                                                                                                   \
void fw_int8_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q, const uint16_t *params, \
                           const T *bias, int64_t M, int64_t N, int64_t K, int64_t float_out) {    \
    gemv_##SUFFIX(8, out, x, x_stride, q, params, bias, M, N, K, float_out);                       \
}

#if HAVE_VNNI
#define VNNI_QUANTIZE(VNNI) if (VNNI) quantize_rows(xf_all, M, K, xq_all, dx_all, xsum_all);
#define VNNI_PASS                                                                                  \
    switch (MC) {                                                                                  \
    case 1: VNNI_CALL(1); break;                                                                   \
    case 2: VNNI_CALL(2); break;                                                                   \
    case 3: VNNI_CALL(3); break;                                                                   \
    case 4: VNNI_CALL(4); break;                                                                   \
    case 5: VNNI_CALL(5); break;                                                                   \
    case 6: VNNI_CALL(6); break;                                                                   \
    case 7: VNNI_CALL(7); break;                                                                   \
    default: VNNI_CALL(8); break;                                                                  \
    }
#else
#define VNNI_QUANTIZE(VNNI)
#define VNNI_PASS
#endif

DEFINE_GEMV(f32, float, f32_load, f32_store, 0)
DEFINE_GEMV(bf16, uint16_t, bf16_load, bf16_store, HAVE_VNNI)

/* For the Python side's check that both agree on the limit. */
int64_t fw_max_gemv_rows(void) { return MAX_GEMV_ROWS; }
