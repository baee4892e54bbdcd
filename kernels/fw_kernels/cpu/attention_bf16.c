/* Decode attention's inner loop for bfloat16 caches, called by attention.c's driver per
 * sequence and kv head. The arithmetic is that of attention.c's vector loops (a float32
 * softmax and float32 value sums, even and odd rows in two chains), except that the
 * scores take the query rounded to bf16 (as a bf16 matmul does) into vdpbf16ps, 32
 * products per instruction without conversions. The work is ordered so that each cached
 * row comes from memory once and seldom waits for it:
 * - scores go 16 keys at a time for all G queries of the kv head;
 * - each value row is widened to float32 once for all the queries that use it;
 * - rows ahead are prefetched into L2 meanwhile (fetch_rows).
 */
#include "fw_cpu.h"

#if defined(__AVX512BF16__)
/* src [n] (n a multiple of 32) to bf16 in place. */
static inline void narrow_to_bf16(float *src, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        const __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((uint16_t *)src + i, (__m512i)pair);
    }
}

/* Rows [from, to) of a cache, into L2. A sequence's rows lie 16 to a block, blocks
 * anywhere in the cache: the hardware prefetchers miss most of them, and waiting for
 * each row halved a 32-sequence decode step's attention speed. (Into L2: the same hint for
 * L1 measured no gain.) */
#define FETCH_AHEAD 32
static inline __attribute__((always_inline)) void fetch_rows(const uint16_t *cache, const int64_t *offsets,
                                                             int64_t from, int64_t to, const int64_t D) {
    for (int64_t r = from; r < to; r++)
        for (int64_t b = 0; b < D * (int64_t)sizeof(uint16_t); b += 64)
            _mm_prefetch((const char *)(cache + offsets[r]) + b, _MM_HINT_T1);
}

/* scores [G, stride] = q [G, D] (bf16) against keys [n]; while it reads keys j to j + 15,
 * the keys FETCH_AHEAD rows on and the values of rows j to j + 15 are fetched. */
static inline __attribute__((always_inline)) void bf16_scores(const uint16_t *q, const uint16_t *key_cache,
                                                              const uint16_t *value_cache,
                                                              const int64_t *offsets, int64_t n, int64_t G,
                                                              const int64_t D, int64_t stride, float *scores) {
    int64_t j = 0;
    fetch_rows(key_cache, offsets, 0, FETCH_AHEAD < n ? FETCH_AHEAD : n, D);
    for (; j + 16 <= n; j += 16) {
        fetch_rows(key_cache, offsets, j + FETCH_AHEAD, j + FETCH_AHEAD + 16 < n ? j + FETCH_AHEAD + 16 : n, D);
        fetch_rows(value_cache, offsets, j, j + 16, D);
        for (int64_t g = 0; g < G; g++) {
            const uint16_t *qg = q + g * D;
            __m512 part[16];
            for (int r = 0; r < 16; r++) {
                const uint16_t *k = key_cache + offsets[j + r];
                part[r] = _mm512_setzero_ps();
                for (int64_t c = 0; c < D / 32; c++)
                    part[r] = _mm512_dpbf16_ps(part[r], (__m512bh)_mm512_loadu_si512(qg + 32 * c),
                                               (__m512bh)_mm512_loadu_si512(k + 32 * c));
            }
            _mm512_storeu_ps(scores + g * stride + j, fw_hsum16(part));
        }
    }
    fetch_rows(value_cache, offsets, j, n, D);
    for (; j < n; j++) {
        const uint16_t *k = key_cache + offsets[j];
        for (int64_t g = 0; g < G; g++) {
            __m512 s = _mm512_setzero_ps();
            for (int64_t c = 0; c < D / 32; c++)
                s = _mm512_dpbf16_ps(s, (__m512bh)_mm512_loadu_si512(q + g * D + 32 * c),
                                     (__m512bh)_mm512_loadu_si512(k + 32 * c));
            scores[g * stride + j] = _mm512_reduce_add_ps(s);
        }
    }
}

/* sc [n] -> exp(sc - max) in place; returns 1 / their sum, summed in fw_lanes_sum's order. */
static float softmax_exps(float *sc, int64_t n, float soft_cap) {
    if (soft_cap > 0.0f) for (int64_t j = 0; j < n; j++) sc[j] = soft_cap * tanhf(sc[j] / soft_cap);
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    __m512 top = lowest;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 lanes = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        top = _mm512_max_ps(top, _mm512_mask_loadu_ps(lowest, lanes, sc + j));
    }
    const float max = _mm512_reduce_max_ps(top);
    float lanes[FW_LANES] = {0};
    int64_t e = 0;
    for (; e + FW_LANES <= n; e += FW_LANES)  /* the compiler vectorises fw_expf here */
        for (int l = 0; l < FW_LANES; l++) { sc[e + l] = fw_expf(sc[e + l] - max); lanes[l] += sc[e + l]; }
    float total = fw_lanes_sum(lanes);
    for (; e < n; e++) { sc[e] = fw_expf(sc[e] - max); total += sc[e]; }
    return 1.0f / total;
}

/* acc [GC, D] = inv[g] * the exp-weighted sum of the values, for GC queries (exps at ex,
 * one query every stride floats). Each value row is widened to float32 once for all GC
 * queries; each query sums even and odd rows in two chains, as the float32 path does. */
static inline __attribute__((always_inline)) void weighted_values(const uint16_t *value_cache, const int64_t *offsets,
                                                                  int64_t n, const int64_t D, const int GC,
                                                                  const float *ex, int64_t stride, const float *inv,
                                                                  float *acc) {
    __m512 even[3][8], odd[3][8];
    for (int g = 0; g < GC; g++)
        for (int64_t c = 0; c < D / 16; c++) even[g][c] = odd[g][c] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 1 < n; j += 2) {
        const uint16_t *v0 = value_cache + offsets[j], *v1 = value_cache + offsets[j + 1];
        for (int64_t c = 0; c < D / 16; c++) {
            const __m512 a = fw_widen_bf16(v0 + 16 * c), b = fw_widen_bf16(v1 + 16 * c);
            for (int g = 0; g < GC; g++) {
                even[g][c] = _mm512_fmadd_ps(_mm512_set1_ps(ex[g * stride + j]), a, even[g][c]);
                odd[g][c] = _mm512_fmadd_ps(_mm512_set1_ps(ex[g * stride + j + 1]), b, odd[g][c]);
            }
        }
    }
    if (j < n) {
        const uint16_t *v0 = value_cache + offsets[j];
        for (int64_t c = 0; c < D / 16; c++) {
            const __m512 a = fw_widen_bf16(v0 + 16 * c);
            for (int g = 0; g < GC; g++) even[g][c] = _mm512_fmadd_ps(_mm512_set1_ps(ex[g * stride + j]), a, even[g][c]);
        }
    }
    for (int g = 0; g < GC; g++)
        for (int64_t c = 0; c < D / 16; c++)
            _mm512_storeu_ps(acc + g * D + 16 * c, _mm512_mul_ps(_mm512_add_ps(even[g][c], odd[g][c]), _mm512_set1_ps(inv[g])));
}

static inline __attribute__((always_inline)) void attend_rows(
        float *q, const uint16_t *key_cache, const uint16_t *value_cache, const int64_t *offsets, int64_t n,
        int64_t G, const int64_t D, int64_t stride, float soft_cap, float *scores, float *acc) {
    narrow_to_bf16(q, G * D);
    bf16_scores((const uint16_t *)q, key_cache, value_cache, offsets, n, G, D, stride, scores);
    float *inv = q;  /* q is no longer needed: G floats of room */
    for (int64_t g = 0; g < G; g++) inv[g] = softmax_exps(scores + g * stride, n, soft_cap);
    const int64_t at_once = D == 64 ? 3 : 1;  /* 2 * at_once * D / 16 sums in registers */
    for (int64_t g = 0; g < G; g += at_once) {
        const float *eg = scores + g * stride;
        float *ag = acc + g * D;
        switch (G - g < at_once ? G - g : at_once) {
        case 1: weighted_values(value_cache, offsets, n, D, 1, eg, stride, inv + g, ag); break;
        case 2: weighted_values(value_cache, offsets, n, D, 2, eg, stride, inv + g, ag); break;
        default: weighted_values(value_cache, offsets, n, D, 3, eg, stride, inv + g, ag); break;
        }
    }
}

/* q [G, D] (float32, scaled) over the n cached rows at cache + offsets[j] into acc [G, D];
 * scores is scratch [G, stride]; D is 64 or 128. */
void fw_attend_rows_bf16(float *q, const uint16_t *key_cache, const uint16_t *value_cache, const int64_t *offsets,
                         int64_t n, int64_t G, int64_t D, int64_t stride, float soft_cap, float *scores, float *acc) {
    if (D == 64)
        attend_rows(q, key_cache, value_cache, offsets, n, G, 64, stride, soft_cap, scores, acc);
    else
        attend_rows(q, key_cache, value_cache, offsets, n, G, 128, stride, soft_cap, scores, acc);
}
#endif
