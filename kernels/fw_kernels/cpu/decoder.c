/* A whole pre-norm decoder stack for a step, in one call (each token a sequence of its own
 * to attention, as the layer-by-layer path's attention takes a prompt's tokens):
 * the Llama family, and what Gemma 2/3 and the mixtures of experts add to it (norms of
 * the attention and MLP outputs, (1 + w) norm weights, GELU-tanh gating, a sliding window
 * and rotary table per layer, routed experts).
 *
 * At batch 1 the Python of a layer-by-layer forward (module calls, views, dispatch) costs
 * about as much as its arithmetic. This runs the same kernels, in the same order, on the
 * same intermediate dtypes as the layer-by-layer path does with fw's CPU kernels, so
 * both give bit-identical results; only the Python between them is gone.
 */
#include "kv_quant.h"

/* The first block a sequence of len tokens attends to (a sliding window skips the rest). */
static inline int64_t first_block(int64_t window, int64_t block_size, int64_t len) {
    return (window > 0 && len > window ? len - window : 0) / block_size;
}

/* Attention reads every block of the step's sequences, scattered through the cache, and
 * waits on memory; the projections before it wait on arithmetic. So the projections
 * prefetch the blocks of the layer whose attention comes next: o, gate/up and down those
 * of the next layer, qkv its own layer's remainder, each a share in proportion to its
 * work. The regions are the blocks (all kv heads of block_size rows), keys then values. */
static fw_prefetch_plan kv_plan(int64_t window, int64_t bs, const int32_t *block_table, int64_t table_stride,
                                const int32_t *seq_lens, int64_t rows, int64_t row_bytes) {
    int64_t blocks = 0;
    for (int64_t b = 0; b < rows; b++) blocks += (seq_lens[b] + bs - 1) / bs - first_block(window, bs, seq_lens[b]);
    int64_t *start = malloc(sizeof(int64_t) * (size_t)(2 * blocks + 1)), *bytes = start + blocks;
    for (int64_t b = 0, i = 0; b < rows; b++)
        for (int64_t pos = first_block(window, bs, seq_lens[b]) * bs; pos < seq_lens[b]; pos += bs, i++) {
            start[i] = (int64_t)block_table[b * table_stride + pos / bs] * bs * row_bytes;
            bytes[i] = (seq_lens[b] - pos < bs ? seq_lens[b] - pos : bs) * row_bytes;
        }
    fw_prefetch_plan plan = {{NULL, NULL}, start, bytes, blocks, 0, 0};
    return plan;
}

/* The step's plans, one per distinct sliding window among the layers (Gemma's alternate
 * two; a fifth window gets none); of[l] indexes layer l's (-1: none). */
typedef struct { fw_prefetch_plan plans[4]; int64_t windows[4], count; int64_t *of; } kv_plans;

static void plan_layers(kv_plans *p, const fw_decoder *m, const int32_t *block_table, int64_t table_stride,
                        const int32_t *seq_lens, int64_t rows, int64_t row_bytes) {
    p->count = 0;
    p->of = malloc(sizeof(int64_t) * (size_t)m->layers);
    for (int64_t l = 0; l < m->layers; l++) {
        const int64_t window = m->layer[l].window;
        int64_t i = 0;
        while (i < p->count && p->windows[i] != window) i++;
        if (i == p->count && p->count < 4) {
            p->windows[i] = window;
            p->plans[i] = kv_plan(window, m->block_size, block_table, table_stride, seq_lens, rows, row_bytes);
            p->count++;
        }
        p->of[l] = i < p->count ? i : -1;
    }
}

static fw_prefetch_plan *plan_of(kv_plans *p, int64_t layer) {
    return p->of[layer] < 0 ? NULL : &p->plans[p->of[layer]];
}

static void free_plans(kv_plans *p) {
    for (int64_t i = 0; i < p->count; i++) free((void *)p->plans[i].start);
    free(p->of);
}

/* The plan for projection `which` (0 o, 1 gate/up, 2 down, 3 qkv) towards `target`'s
 * cache, or NULL when there is no such layer. */
static const fw_prefetch_plan *share(fw_prefetch_plan *plan, const fw_decoder_layer *target, int which,
                                     const int64_t *shares, int64_t work) {
    if (!target || !plan || plan->count == 0) return NULL;
    int64_t before = 0;
    for (int i = 0; i < which; i++) before += shares[i];
    plan->base[0] = target->key_cache;
    plan->base[1] = target->value_cache;
    plan->from = 2 * plan->count * before / work;
    plan->to = 2 * plan->count * (before + shares[which]) / work;
    return plan;
}

/* Gemma's norm of a sublayer's output before its residual add (in place), when it has one. */
#define OUTPUT_NORM(SUFFIX, m, norm, data, rows)                                                   \
    if (norm) fw_add_rms_norm_##SUFFIX(data, NULL, norm, data, rows, (m)->hidden, (m)->eps, (m)->norm_offset)

#define DEFINE_DECODER(SUFFIX, T)                                                                  \
static void gate_##SUFFIX(const fw_decoder *m, const T *gate_up, T *out, int64_t rows, int64_t inter) { \
    if (m->activation == FW_ACT_GELU_TANH) fw_gelu_tanh_and_mul_##SUFFIX(gate_up, out, rows, inter); \
    else fw_silu_and_mul_##SUFFIX(gate_up, out, rows, inter);                                      \
}                                                                                                  \
                                                                                                   \
void fw_decoder_decode_##SUFFIX(const fw_decoder *m, const T *embedded, T *out, int64_t rows,     \
                                const int64_t *positions, const int64_t *slots,                    \
                                const int32_t *block_table, int64_t table_stride,                  \
                                const int32_t *seq_lens, int64_t max_len, int64_t prefetch_kv) {   \
    const int64_t H = m->hidden, D = m->head_size, I = m->intermediate;                            \
    const int64_t q_width = m->heads * D, kv_width = m->kv_heads * D;                              \
    const int64_t qkv_width = q_width + 2 * kv_width;                                              \
    const float eps = m->eps, offset = m->norm_offset;                                             \
    T *residual = malloc(sizeof(T) * (size_t)(rows * (3 * H + qkv_width + q_width + 3 * I)));     \
    T *x = residual + rows * H, *mixed = x + rows * H, *qkv = mixed + rows * H;                    \
    T *attn = qkv + rows * qkv_width, *gate_up = attn + rows * q_width, *act = gate_up + rows * 2 * I; \
    memcpy(residual, embedded, sizeof(T) * (size_t)(rows * H));                                    \
    kv_plans plans;                                                                                \
    const int64_t kv_row_bytes = m->kv_kind ? m->kv_heads * (D + 4) : kv_width * (int64_t)sizeof(T); \
    plan_layers(&plans, m, block_table, table_stride, seq_lens, prefetch_kv ? rows : 0, kv_row_bytes); \
    const int64_t shares[4] = {q_width * H, 2 * I * H, I * H, qkv_width * H}; /* o, gate_up, down, qkv */ \
    const int64_t work = shares[0] + shares[1] + shares[2] + shares[3];                            \
    fw_add_rms_norm_##SUFFIX(embedded, NULL, m->layer[0].input_norm, x, rows, H, eps, offset);     \
    for (int64_t l = 0; l < m->layers; l++) {                                                      \
        const fw_decoder_layer *L = &m->layer[l], *next = l + 1 < m->layers ? L + 1 : NULL;         \
        fw_prefetch_plan *own = plan_of(&plans, l), *ahead = next ? plan_of(&plans, l + 1) : NULL;  \
        if (l > 0) fw_add_rms_norm_##SUFFIX(mixed, residual, L->input_norm, x, rows, H, eps, offset); \
        fw_project_##SUFFIX(qkv, x, H, &L->qkv, rows, rows, qkv_width, H, share(own, L, 3, shares, work)); \
        if (L->q_norm) {                                                                           \
            for (int64_t t = 0; t < rows; t++) {                                                   \
                T *q = qkv + t * qkv_width;                                                        \
                fw_add_rms_norm_##SUFFIX(q, NULL, L->q_norm, q, m->heads, D, eps, offset);         \
                fw_add_rms_norm_##SUFFIX(q + q_width, NULL, L->k_norm, q + q_width, m->kv_heads, D, eps, offset); \
            }                                                                                      \
        }                                                                                          \
        fw_rope_neox_##SUFFIX(qkv, qkv_width, positions, L->cos_sin, rows, m->heads + m->kv_heads, D, \
                              m->rotary_dim);                                                      \
        if (m->kv_kind) {                                                                          \
            fw_write_kv_quant_##SUFFIX(qkv + q_width, qkv_width, qkv + q_width + kv_width, qkv_width, \
                                       L->key_cache, L->value_cache, slots, rows, m->kv_heads,      \
                                       m->block_size, D,                                            \
                                       m->kv_kind, m->kv_dynamic);                                  \
            fw_paged_decode_quant_##SUFFIX(attn, qkv, qkv_width, L->key_cache, L->value_cache,     \
                                           block_table, table_stride, seq_lens, rows, m->kv_heads,  \
                                           m->heads / m->kv_heads, D, m->block_size, m->scale,      \
                                           L->window, m->soft_cap, max_len, m->kv_kind);            \
        } else {                                                                                   \
            fw_write_kv_##SUFFIX(qkv + q_width, qkv_width, qkv + q_width + kv_width, qkv_width,    \
                                 L->key_cache, L->value_cache, slots, rows, kv_width);             \
            fw_paged_decode_##SUFFIX(attn, qkv, qkv_width, L->key_cache, L->value_cache, block_table, \
                                     table_stride, seq_lens, rows, m->kv_heads, m->heads / m->kv_heads, \
                                     D, m->block_size, m->scale, L->window, m->soft_cap, max_len); \
        }                                                                                          \
        fw_project_##SUFFIX(mixed, attn, q_width, &L->o, rows, rows, H, q_width, share(ahead, next, 0, shares, work)); \
        OUTPUT_NORM(SUFFIX, m, L->attn_out_norm, mixed, rows);                                     \
        fw_add_rms_norm_##SUFFIX(mixed, residual, L->post_norm, x, rows, H, eps, offset);          \
        if (L->moe) {                                                                              \
            fw_moe_##SUFFIX(L->moe, x, mixed, rows, H);                                            \
        } else {                                                                                   \
            fw_project_##SUFFIX(gate_up, x, H, &L->gate_up, rows, rows, 2 * I, H, share(ahead, next, 1, shares, work)); \
            gate_##SUFFIX(m, gate_up, act, rows, I);                                               \
            fw_project_##SUFFIX(mixed, act, I, &L->down, rows, rows, H, I, share(ahead, next, 2, shares, work)); \
        }                                                                                          \
        OUTPUT_NORM(SUFFIX, m, L->mlp_out_norm, mixed, rows);                                      \
    }                                                                                              \
    fw_add_rms_norm_##SUFFIX(mixed, residual, m->final_norm, out, rows, H, eps, offset);           \
    free(residual);                                                                                \
    free_plans(&plans);                                                                            \
}

DEFINE_DECODER(f32, float)
DEFINE_DECODER(bf16, uint16_t)
