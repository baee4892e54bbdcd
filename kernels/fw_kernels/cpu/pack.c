/* Weight packing for the quantized kernels, in one pass over the weights.
 *
 * packing.py defines the layouts and holds the plain-torch versions, which are the
 * reference: these give the same bytes (tests check it). Each torch version makes a
 * dozen passes over a float32 copy of the matrix, which made packing 17 s of a first
 * start on a 135M-parameter model; here every weight is read once.
 *
 * The arithmetic is the reference's, operation for operation: float32 min/max and
 * divisions, round-half-to-even (rintf), float16 rounding of scales and minimums. No
 * operation here multiplies and adds in one expression, so contraction into FMAs
 * cannot change a rounding. (Where a group holds both 0 and -0 as its minimum, either
 * may be stored: the same number.)
 */
#include "fw_cpu.h"

#define PACK_GROUP 32
#define PACK_BLOCK 16 /* output rows per block, one 32-bit lane each (packing.BLOCK) */
#define PACK_PANEL 32

/* float -> float16 bits, round to nearest even (as torch's .to(torch.float16)); integer
 * arithmetic only. */
static uint16_t half_bits(float f) {
    union { float f; uint32_t u; } v = { f };
    const uint32_t sign = (v.u >> 16) & 0x8000u, absx = v.u & 0x7fffffffu;
    if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to infinity */
    const int e = (int)(absx >> 23);
    if (absx >= 0x38800000u) {  /* a normal float16 */
        const uint32_t mant = absx & 0x7fffffu, rest = mant & 0x1fffu;
        uint32_t h = ((uint32_t)(e - 112) << 10) | (mant >> 13);
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    if (e < 102) return (uint16_t)sign;  /* below half the smallest subnormal */
    const uint32_t m = (absx & 0x7fffffu) | 0x800000u;
    const int shift = 126 - e;  /* 14..24 */
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static float half_value(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31u, man = h & 1023u;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        v.f = ldexpf((float)man, -24);
        v.u |= sign;
        return v.f;
    }
    v.u = sign | (exp == 31 ? 0x7f800000u | (man << 13) : ((exp + 112) << 23) | (man << 13));
    return v.f;
}

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

#define DEFINE_PACK(SUFFIX, T, LOAD)                                                                     \
    /* packing.pack_int4: q [rows_p / 16][groups][4][16][4], params [rows_p / 16][groups][2][16] */  \
    void fw_pack_int4_##SUFFIX(const T *w, int64_t rows, int64_t cols, uint8_t *q, uint16_t *params) {  \
        const int64_t groups = cols / PACK_GROUP, padded = (rows + PACK_BLOCK - 1) / PACK_BLOCK * PACK_BLOCK; \
        _Pragma("omp parallel for schedule(static)")                                                   \
        for (int64_t r = 0; r < padded; r++) {                                                         \
            const int64_t b = r / PACK_BLOCK, i = r % PACK_BLOCK;                                      \
            for (int64_t g = 0; g < groups; g++) {                                                     \
                uint8_t *out = q + (b * groups + g) * 4 * PACK_BLOCK * 4 + i * 4;                      \
                uint16_t *p = params + (b * groups + g) * 2 * PACK_BLOCK + i;                          \
                float x[PACK_GROUP], lo = 0.0f, hi = 0.0f;                                             \
                for (int k = 0; k < PACK_GROUP; k++) x[k] = r < rows ? LOAD(w[r * cols + g * PACK_GROUP + k]) : 0.0f; \
                lo = hi = x[0];                                                                        \
                for (int k = 1; k < PACK_GROUP; k++) { lo = x[k] < lo ? x[k] : lo; hi = x[k] > hi ? x[k] : hi; } \
                const float range = hi - lo;                                                           \
                const uint16_t scale_bits = half_bits(range / 15.0f), low_bits = half_bits(lo);         \
                const float scale = half_value(scale_bits), low = half_value(low_bits);                \
                const float safe = scale > 0.0f ? scale : 1.0f;                                        \
                uint8_t level[PACK_GROUP];                                                             \
                for (int k = 0; k < PACK_GROUP; k++) {                                                 \
                    const float d = x[k] - low;                                                        \
                    level[k] = (uint8_t)clampf(rintf(d / safe), 0.0f, 15.0f);                          \
                }                                                                                      \
                for (int k = 0; k < 16; k++)                                                           \
                    out[k / 4 * PACK_BLOCK * 4 + k % 4] = (uint8_t)(level[k] | (level[k + 16] << 4));  \
                p[0] = scale_bits;                                                                     \
                p[PACK_BLOCK] = low_bits;                                                              \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    /* packing.pack_int8: q [rows_p / 16][groups][8][16][4], params (scale, -128 scale) [..][2][16] */ \
    void fw_pack_int8_##SUFFIX(const T *w, int64_t rows, int64_t cols, uint8_t *q, uint16_t *params) {  \
        const int64_t groups = cols / PACK_GROUP, padded = (rows + PACK_BLOCK - 1) / PACK_BLOCK * PACK_BLOCK; \
        _Pragma("omp parallel for schedule(static)")                                                   \
        for (int64_t r = 0; r < padded; r++) {                                                         \
            const int64_t b = r / PACK_BLOCK, i = r % PACK_BLOCK;                                      \
            for (int64_t g = 0; g < groups; g++) {                                                     \
                uint8_t *out = q + (b * groups + g) * 8 * PACK_BLOCK * 4 + i * 4;                      \
                uint16_t *p = params + (b * groups + g) * 2 * PACK_BLOCK + i;                          \
                float x[PACK_GROUP], amax = 0.0f;                                                      \
                for (int k = 0; k < PACK_GROUP; k++) {                                                 \
                    x[k] = r < rows ? LOAD(w[r * cols + g * PACK_GROUP + k]) : 0.0f;                   \
                    const float a = fabsf(x[k]);                                                       \
                    amax = a > amax ? a : amax;                                                        \
                }                                                                                      \
                const uint16_t scale_bits = half_bits(amax / 127.0f);                                  \
                const float scale = half_value(scale_bits), safe = scale > 0.0f ? scale : 1.0f;        \
                for (int k = 0; k < PACK_GROUP; k++)                                                   \
                    out[k / 4 * PACK_BLOCK * 4 + k % 4] =                                              \
                        (uint8_t)(clampf(rintf(x[k] / safe), -127.0f, 127.0f) + 128.0f);               \
                p[0] = scale_bits;                                                                     \
                p[PACK_BLOCK] = half_bits(-128.0f * scale);                                            \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    /* packing.pack_int8_panels: q [rows_p / 32][cols / 4][32][4], scales float32 [rows_p] */         \
    void fw_pack_int8_panels_##SUFFIX(const T *w, int64_t rows, int64_t cols, uint8_t *q, float *scales) { \
        const int64_t padded = (rows + PACK_PANEL - 1) / PACK_PANEL * PACK_PANEL;                      \
        _Pragma("omp parallel for schedule(static)")                                                   \
        for (int64_t r = 0; r < padded; r++) {                                                         \
            const int64_t panel = r / PACK_PANEL, lane = r % PACK_PANEL;                               \
            float amax = 0.0f;                                                                         \
            if (r < rows)                                                                              \
                for (int64_t c = 0; c < cols; c++) {                                                   \
                    const float a = fabsf(LOAD(w[r * cols + c]));                                      \
                    amax = a > amax ? a : amax;                                                        \
                }                                                                                      \
            const float scale = amax / 127.0f, safe = scale > 0.0f ? scale : 1.0f;                     \
            scales[r] = scale;                                                                         \
            for (int64_t c = 0; c < cols; c++) {                                                       \
                const float x = r < rows ? LOAD(w[r * cols + c]) : 0.0f;                               \
                q[((panel * (cols / 4) + c / 4) * PACK_PANEL + lane) * 4 + c % 4] =                    \
                    (uint8_t)(clampf(rintf(x / safe), -127.0f, 127.0f) + 128.0f);                      \
            }                                                                                          \
        }                                                                                              \
    }

DEFINE_PACK(f32, float, f32_load)
DEFINE_PACK(bf16, uint16_t, bf16_load)
