/* The write of a step's keys and values into a quantized KV cache (kv_quant.h): one
 * scale per token and head, from that row alone, so a token's stored row never depends
 * on the batch or the prefill chunk it came in. The arithmetic is kernels/fw_kernels/
 * kv_quant.py's, operation for operation, so both store the same bytes. */
#include "kv_quant.h"

/* One row of D values (float32) into D codes and the scale after them. */
static void quantize_row(const float *x, int64_t D, int64_t kind, int64_t dynamic, uint8_t *row) {
    float amax = 0.0f;
    for (int64_t d = 0; d < D; d++) amax = fabsf(x[d]) > amax ? fabsf(x[d]) : amax;
    float scale = 1.0f, inv = 1.0f;
    if (kind == FW_KV_INT8) {
        scale = amax / 127.0f;
        inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t d = 0; d < D; d++) {
            const float c = __builtin_rintf(x[d] * inv);
            row[d] = (uint8_t)(int8_t)(c > 127.0f ? 127.0f : (c < -127.0f ? -127.0f : c));
        }
    } else {
        if (dynamic) {
            scale = amax / FW_FP8_MAX;
            inv = amax > 0.0f ? FW_FP8_MAX / amax : 0.0f;
        }
        for (int64_t d = 0; d < D; d++) {
            const float y = x[d] * inv;
            row[d] = fw_fp8_store(y > FW_FP8_MAX ? FW_FP8_MAX : (y < -FW_FP8_MAX ? -FW_FP8_MAX : y));
        }
    }
    memcpy(row + D, &scale, sizeof scale);
}

#define DEFINE_WRITE(SUFFIX, T, LOAD)                                                              \
/* key/value rows [rows, kv_heads * D] (row strides key_stride, value_stride) at slots         \
 * (negative: skipped) of the caches [blocks, kv_heads, block_size, D + 4] bytes. */           \
void fw_write_kv_quant_##SUFFIX(const T *key, int64_t key_stride, const T *value, int64_t value_stride, \
                                uint8_t *key_cache, uint8_t *value_cache, const int64_t *slots,    \
                                int64_t rows, int64_t kv_heads, int64_t block_size, int64_t D,      \
                                int64_t kind,                                                       \
                                int64_t dynamic) {                                                  \
    const int64_t row_bytes = D + FW_KV_SCALE_BYTES;                                               \
    float *x = fw_scratch(sizeof(float) * (size_t)D);                                              \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        if (slots[t] < 0) continue;                                                                \
        for (int64_t h = 0; h < kv_heads; h++) {                                                   \
            const int64_t block = slots[t] / block_size, slot = slots[t] % block_size;              \
            const int64_t at = ((block * kv_heads + h) * block_size + slot) * row_bytes;             \
            for (int64_t d = 0; d < D; d++) x[d] = LOAD(key[t * key_stride + h * D + d]);          \
            quantize_row(x, D, kind, dynamic, key_cache + at);                                      \
            for (int64_t d = 0; d < D; d++) x[d] = LOAD(value[t * value_stride + h * D + d]);      \
            quantize_row(x, D, kind, dynamic, value_cache + at);                                    \
        }                                                                                          \
    }                                                                                              \
    free(x);                                                                                       \
}

DEFINE_WRITE(f32, float, f32_load)
DEFINE_WRITE(bf16, uint16_t, bf16_load)
