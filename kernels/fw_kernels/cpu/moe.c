/* A mixture-of-experts MLP (Mixtral, Qwen2-MoE, Qwen3-MoE) for one step's tokens.
 *
 * The router's softmax picks each token's top_k experts; tokens are then grouped by
 * expert (a counting sort, tokens in row order within an expert), so every expert's
 * gate/up and down projections run once per step on all of its tokens instead of once
 * per token. The layer-by-layer forward and the fused decoder both call this, so both
 * give the same results. A token's result never depends on which other tokens share
 * its experts: the projections compute each row on its own, and the combination is the
 * token's own sum, in float32, in the order of its experts' weights.
 */
#include "fw_cpu.h"

/* probs[] = softmax(logits[0..experts)); the top_k largest go to ids/weights, largest
 * first (ties: the lower expert), renormalised to sum to one when asked. */
static void route(const float *logits, float *probs, int64_t experts, int64_t top_k, int64_t renormalize,
                  int32_t *ids, float *weights) {
    float max = -INFINITY, sum = 0.0f;
    for (int64_t e = 0; e < experts; e++) max = logits[e] > max ? logits[e] : max;
    for (int64_t e = 0; e < experts; e++) sum += probs[e] = fw_expf(logits[e] - max);
    for (int64_t e = 0; e < experts; e++) probs[e] /= sum;
    float total = 0.0f;
    for (int64_t s = 0; s < top_k; s++) {
        int64_t best = 0;
        for (int64_t e = 1; e < experts; e++) best = probs[e] > probs[best] ? e : best;
        ids[s] = (int32_t)best;
        total += weights[s] = probs[best];
        probs[best] = -1.0f;  /* taken */
    }
    if (renormalize)
        for (int64_t s = 0; s < top_k; s++) weights[s] /= total;
}

#define DEFINE_MOE(SUFFIX, T, LOAD, STORE)                                                         \
/* x . w in float32, in a fixed order (lanes, then the lanes' sum, then the tail). */              \
static float dot_##SUFFIX(const T *x, const T *w, int64_t n) {                                    \
    float lanes[FW_LANES] = {0};                                                                   \
    int64_t i = 0;                                                                                 \
    for (; i + FW_LANES <= n; i += FW_LANES)                                                       \
        for (int l = 0; l < FW_LANES; l++) lanes[l] += LOAD(x[i + l]) * LOAD(w[i + l]);           \
    float sum = fw_lanes_sum(lanes);                                                               \
    for (; i < n; i++) sum += LOAD(x[i]) * LOAD(w[i]);                                             \
    return sum;                                                                                    \
}                                                                                                  \
                                                                                                   \
/* out [rows, inter] = act(gate_up [rows, 2 * inter]): act(gate) * up */                          \
static void gate_##SUFFIX(int64_t activation, const T *gate_up, T *out, int64_t rows, int64_t inter) { \
    if (activation == FW_ACT_GELU_TANH) fw_gelu_tanh_and_mul_##SUFFIX(gate_up, out, rows, inter);  \
    else fw_silu_and_mul_##SUFFIX(gate_up, out, rows, inter);                                      \
}                                                                                                  \
                                                                                                   \
/* out = down(act(gate_up(x))) for `rows` rows of x, from the layouts of a `step` of rows. */     \
static void mlp_##SUFFIX(const fw_projection *gate_up, const fw_projection *down, int64_t act,    \
                         const T *x, T *hidden2, T *hidden1, T *out, int64_t rows, int64_t step,  \
                         int64_t H, int64_t I) {                                                   \
    fw_project_##SUFFIX(hidden2, x, H, gate_up, rows, step, 2 * I, H, NULL);                       \
    gate_##SUFFIX(act, hidden2, hidden1, rows, I);                                                 \
    fw_project_##SUFFIX(out, hidden1, I, down, rows, step, H, I, NULL);                            \
}                                                                                                  \
                                                                                                   \
void fw_moe_##SUFFIX(const fw_moe *m, const T *x, T *out, int64_t rows, int64_t H) {               \
    const int64_t E = m->experts, K = m->top_k, I = m->intermediate, S = m->shared_intermediate;   \
    const int64_t wide = I > S ? I : S, picks = rows * K;                                          \
    float *logits = malloc(sizeof(float) * (size_t)(rows * 2 * E + picks + rows));                \
    float *probs = logits + rows * E, *weights = probs + rows * E, *gates = weights + picks;      \
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)picks);                                        \
    int64_t *start = calloc((size_t)(E + 1 + picks), sizeof(int64_t)), *order = start + E + 1;     \
    T *gathered = malloc(sizeof(T) * (size_t)(rows * H * (K + 2) + rows * 3 * wide));              \
    T *expert_out = gathered + rows * H, *shared = expert_out + picks * H;                         \
    T *hidden2 = shared + rows * H, *hidden1 = hidden2 + rows * 2 * wide;                          \
    const T *router = (const T *)m->router;                                                        \
    _Pragma("omp parallel for if (rows * E * H >= 65536) schedule(static)")                         \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        for (int64_t e = 0; e < E; e++) logits[t * E + e] = dot_##SUFFIX(x + t * H, router + e * H, H); \
        route(logits + t * E, probs + t * E, E, K, m->renormalize, ids + t * K, weights + t * K);  \
    }                                                                                              \
    /* counting sort of the (token, slot) picks by expert, tokens in order within one */           \
    for (int64_t i = 0; i < picks; i++) start[ids[i] + 1]++;                                       \
    for (int64_t e = 0; e < E; e++) start[e + 1] += start[e];                                      \
    {                                                                                              \
        int64_t *next = malloc(sizeof(int64_t) * (size_t)E);                                       \
        memcpy(next, start, sizeof(int64_t) * (size_t)E);                                          \
        for (int64_t i = 0; i < picks; i++) order[next[ids[i]]++] = i;                             \
        free(next);                                                                                \
    }                                                                                              \
    for (int64_t e = 0; e < E; e++) {                                                              \
        const int64_t n = start[e + 1] - start[e];                                                 \
        if (n == 0) continue;                                                                      \
        const int64_t *picked = order + start[e];                                                  \
        for (int64_t j = 0; j < n; j++)                                                            \
            memcpy(gathered + j * H, x + (picked[j] / K) * H, sizeof(T) * (size_t)H);               \
        mlp_##SUFFIX(&m->gate_up[e], &m->down[e], m->activation, gathered, hidden2, hidden1, shared, n, \
                     rows, H, I);                                                                  \
        for (int64_t j = 0; j < n; j++)                                                            \
            memcpy(expert_out + picked[j] * H, shared + j * H, sizeof(T) * (size_t)H);              \
    }                                                                                              \
    if (S > 0) {                                                                                   \
        mlp_##SUFFIX(&m->shared_gate_up, &m->shared_down, m->activation, x, hidden2, hidden1, shared, rows, \
                     rows, H, S);                                                                  \
        for (int64_t t = 0; t < rows; t++)                                                         \
            gates[t] = m->shared_gate                                                              \
                ? 1.0f / (1.0f + fw_expf(-dot_##SUFFIX(x + t * H, (const T *)m->shared_gate, H))) : 1.0f; \
    }                                                                                              \
    _Pragma("omp parallel for if (rows * H * K >= 65536) schedule(static)")                         \
    for (int64_t t = 0; t < rows; t++) {                                                           \
        for (int64_t i = 0; i < H; i++) {                                                          \
            float sum = 0.0f;                                                                      \
            for (int64_t s = 0; s < K; s++) sum += weights[t * K + s] * LOAD(expert_out[(t * K + s) * H + i]); \
            if (S > 0) sum += gates[t] * LOAD(shared[t * H + i]);                                  \
            out[t * H + i] = STORE(sum);                                                           \
        }                                                                                          \
    }                                                                                              \
    free(gathered);                                                                                \
    free(start);                                                                                   \
    free(ids);                                                                                     \
    free(logits);                                                                                  \
}

DEFINE_MOE(f32, float, f32_load, f32_store)
DEFINE_MOE(bf16, uint16_t, bf16_load, bf16_store)
