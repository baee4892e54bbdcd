/* One projection of a decoder layer, from whichever of its layouts serves the step.
 *
 * A step's row count picks the layout, as PackedWeight.layout_for does layer by layer:
 * int4 or 8-bit blocks up to their row limits (any count where they are a weight's only
 * layout: the int4 and gguf methods' case), int8 panels (or dense bf16 panels) beyond;
 * the blocks and the int8 panels prefetch the plan's KV blocks as they compute. A
 * mixture of experts runs an expert on some of the step's rows, through the layout the
 * whole step's row count picks (`step_rows`), so an expert's weights are read the way a
 * dense layer's are in the same step.
 */
#include "fw_cpu.h"

void fw_project_f32(float *out, const float *x, int64_t x_stride, const fw_projection *p, int64_t rows,
                    int64_t step_rows, int64_t n, int64_t k, const fw_prefetch_plan *plan) {
    (void)plan;
    (void)step_rows;  /* float32 projections are int4 or 8-bit blocks only (small steps) */
    if (p->int4)
        fw_int4_gemv_f32(out, x, x_stride, p->int4, p->params, p->bias, rows, n, k, 0);
    else
        fw_int8_gemv_f32(out, x, x_stride, p->q8, p->q8_params, p->bias, rows, n, k, 0);
}

void fw_project_bf16(uint16_t *out, const uint16_t *x, int64_t x_stride, const fw_projection *p, int64_t rows,
                     int64_t step_rows, int64_t n, int64_t k, const fw_prefetch_plan *plan) {
    if (p->int4 && step_rows <= p->int4_rows)
        fw_blocks_gemv_prefetching_bf16(4, out, x, x_stride, p->int4, p->params, p->bias, rows, n, k, 0, plan);
    else if (p->q8 && step_rows <= p->q8_rows)
        fw_blocks_gemv_prefetching_bf16(8, out, x, x_stride, p->q8, p->q8_params, p->bias, rows, n, k, 0, plan);
    else if (p->int8)
        fw_int8_gemm_prefetching_bf16(out, x, x_stride, p->int8, p->scales, p->bias, rows, n, k, 0, plan);
    else
        fw_dense_gemm_bf16(out, x, x_stride, p->dense, p->bias, rows, n, k, 0);
}
