#include "fw_cpu.h"

/* Weight-only quantized matrix-vector products for one to four input rows: the decode
 * step's linears, bound by the bytes of weight they read. Both formats group 32 input
 * weights per output row:
 *   int4: 16 bytes (low nibble = element j, high nibble = element j + 16) and float32
 *         (scale, min); w = q * scale + min, q in 0..15 (GGUF's Q4_1, regrouped)
 *   int8: 32 signed bytes and a float32 scale; w = q * scale (GGUF's Q8_0)
 * x is converted to float32 once; each thread takes a share of the output rows. */
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

#define DEFINE_GEMV(SUFFIX, T, LOAD, STORE)                                                     \
/* out [M, N] = x [M, K] (row stride x_stride) @ W.T (+ bias), W int4 as described above;    \
 * M <= MAX_GEMV_ROWS, K a multiple of 32. */                                                     \
void fw_int4_gemv_##SUFFIX(T *out, const T *x, int64_t x_stride, const uint8_t *q, const float *sm,  \
                           const T *bias, int64_t M, int64_t N, int64_t K) {                       \
    const int64_t groups = K / 32;                                                                 \
    float *xf = fw_scratch(sizeof(float) * (size_t)(M * K + M * groups));                              \
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
    float *xf = fw_scratch(sizeof(float) * (size_t)(M * K));                                           \
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

DEFINE_GEMV(f32, float, f32_load, f32_store)
DEFINE_GEMV(bf16, uint16_t, bf16_load, bf16_store)
