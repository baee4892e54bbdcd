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

static inline float fw_kv_row_scale(const uint8_t *row, int64_t D) {
    float scale;
    memcpy(&scale, row + D, sizeof scale);
    return scale;
}
#endif
