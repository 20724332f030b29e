/*
 * The weight grid: a weighted layer's weights as a matrix and the codes a
 * rounding method may pick for it (shared by the weight methods).
 */
#ifndef QT_QUANT_WGRID_H
#define QT_QUANT_WGRID_H

#include <stdint.h>

/* A weighted layer as a matrix: C rows (output channels), K columns (inputs in
 * the order the runtime's GEMM uses: Conv im2col order c_in-major then kh, kw;
 * one matrix per group for grouped Conv). Codes are integers in [qmin, qmax];
 * value = scale[row][col / group_size] * code. */
struct qt_wgrid {
	int64_t C, K;
	int64_t group_size;   /* columns sharing one scale; == K for one scale per row */
	int32_t qmin, qmax;   /* e.g. [-7, 7] restricted int4, [-2, 1] full-range int2 */
	float *scale;         /* C * ceil(K / group_size) entries, row-major, finite and > 0 */
};

#endif
