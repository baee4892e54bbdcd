/* Element-wise kernels of a decoder layer: residual add + RMSNorm, SiLU and GELU-tanh
 * gating, rotary embedding, and the KV-cache write. */
#include "fw_cpu.h"

/* Elements from which a kernel splits its rows among the threads. A parallel region costs
 * ~1 us to start and join on threads that are already spinning; the gating kernels take
 * ~0.6 ns an element on one core (an exponential and a division each) and the norms ~0.5,
 * so from a few thousand elements two threads finish sooner (a 32-row step's gating: 29 ->
 * 16 us). Each row is computed whole by one thread, so the split never changes a result. */
#define PARALLEL_ELEMENTS 4096

#define DEFINE_ELEMENTWISE(SUFFIX, T, LOAD, STORE)                                                     \
/* residual += x (when residual is given); out = rms_norm(residual or x) * (offset + weight)    \
 * (offset 0 for Llama's norms, 1 for Gemma's, which store the scale minus one). */               \
void fw_add_rms_norm_##SUFFIX(const T *x, T *residual, const T *weight, T *out, int64_t rows,     \
                              int64_t hidden, float eps, float offset) {                           \
    _Pragma("omp parallel for if (rows > 1 && rows * hidden >= PARALLEL_ELEMENTS) schedule(static)") \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        const T *xr = x + t * hidden;                                                              \
        T *rr = residual ? residual + t * hidden : NULL;                                           \
        T *o = out + t * hidden;                                                                   \
        if (rr) {                                                                                  \
            for (int64_t i = 0; i < hidden; i++) rr[i] = STORE(LOAD(xr[i]) + LOAD(rr[i]));          \
        }                                                                                          \
        const T *src = rr ? rr : xr;                                                               \
        float lanes[FW_LANES] = {0}, sum;                                                          \
        int64_t i = 0;                                                                             \
        for (; i + FW_LANES <= hidden; i += FW_LANES)                                              \
            for (int l = 0; l < FW_LANES; l++) { float v = LOAD(src[i + l]); lanes[l] += v * v; }   \
        sum = fw_lanes_sum(lanes);                                                                 \
        for (; i < hidden; i++) { float v = LOAD(src[i]); sum += v * v; }                          \
        float inv = 1.0f / sqrtf(sum / (float)hidden + eps);                                       \
        _Pragma("omp simd")                                                                        \
        for (int64_t i = 0; i < hidden; i++)                                                       \
            o[i] = STORE(LOAD(src[i]) * inv * (offset + LOAD(weight[i])));                         \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* out[t] = silu(x[t, :inter]) * x[t, inter:] */                                                   \
void fw_silu_and_mul_##SUFFIX(const T *x, T *out, int64_t rows, int64_t inter) {                   \
    _Pragma("omp parallel for if (rows > 1 && rows * inter >= PARALLEL_ELEMENTS) schedule(static)") \
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
/* out[t] = gelu_tanh(x[t, :inter]) * x[t, inter:] (Gemma's gating) */                             \
void fw_gelu_tanh_and_mul_##SUFFIX(const T *x, T *out, int64_t rows, int64_t inter) {              \
    _Pragma("omp parallel for if (rows > 1 && rows * inter >= PARALLEL_ELEMENTS) schedule(static)") \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        const T *gate = x + t * 2 * inter, *up = gate + inter;                                     \
        T *o = out + t * inter;                                                                    \
        _Pragma("omp simd")                                                                        \
        for (int64_t i = 0; i < inter; i++) o[i] = STORE(fw_gelu_tanh(LOAD(gate[i])) * LOAD(up[i])); \
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
    _Pragma("omp parallel for if (rows > 1 && rows * heads * head_size >= PARALLEL_ELEMENTS) schedule(static)") \
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

DEFINE_ELEMENTWISE(f32, float, f32_load, f32_store)
DEFINE_ELEMENTWISE(bf16, uint16_t, bf16_load, bf16_store)

/* out[r] = the first index of the largest value of row r of x [rows, cols] (float32
 * logits; NaN entries never win). torch's argmax runs one element at a time here. */
void fw_argmax_f32(const float *x, int64_t rows, int64_t cols, int64_t *out) {
    _Pragma("omp parallel for if (rows * cols >= 262144) schedule(static)")
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        float lanes[FW_LANES];
        for (int l = 0; l < FW_LANES; l++) lanes[l] = -INFINITY;
        int64_t i = 0;
        for (; i + FW_LANES <= cols; i += FW_LANES)
            for (int l = 0; l < FW_LANES; l++) lanes[l] = row[i + l] > lanes[l] ? row[i + l] : lanes[l];
        float best = -INFINITY;
        for (int l = 0; l < FW_LANES; l++) best = lanes[l] > best ? lanes[l] : best;
        for (; i < cols; i++) best = row[i] > best ? row[i] : best;
        int64_t at = 0;
        for (int64_t j = 0; j < cols; j++) {
            if (row[j] == best) { at = j; break; }
        }
        out[r] = at;
    }
}
