/*
 * The one view every weight method gets of a weighted layer (internal).
 *
 * A weighted op (Conv, ConvTranspose, Gemm, MatMul, MatMulBias) is reduced
 * once to a float matrix W[C][K] plus the grid its codes live on; scale
 * choice (wscale.c) and code choice (round-to-nearest here, GPTQ in gptq.h)
 * then work on that view and never on the op. This keeps "choose the grid"
 * and "choose the codes" apart: a method replaces one of them and nothing
 * else.
 *
 * Rounding rule, shared by every routine here: code = clamp(nearbyint(w /
 * scale), qmin, qmax), ties to even, in float (qround.h, the rule of
 * qt_quantize_one, with zero point 0), so codes are exactly the ones the
 * runtime's grid gives.
 */
#ifndef QTOOL_LIB_QUANT_WGRID_H
#define QTOOL_LIB_QUANT_WGRID_H

#include <stdint.h>

#include "qtool/numfmt.h"
#include "qtool/qtool.h"
#include "quant/qround.h"

/* A weighted layer as a matrix: C rows (output channels), K columns (inputs in
 * the order the runtime's GEMM uses: Conv im2col order c_in-major then kh, kw;
 * one matrix per group for grouped Conv). Codes are integers in [qmin, qmax];
 * value = scale[row][col / group_size] * code. With a number format (fmt
 * other than QT_FMT_INT) codes are the format's element codes instead and
 * value = scale * the element's value (qt_wgrid_value); the scales (block
 * scales for MX and NVFP4) are then fixed by lib/quant/wformat.c and only
 * the codes are chosen (round to nearest, GPTQ). */
struct qt_wgrid {
	int64_t C, K;
	int64_t group_size;   /* columns sharing one scale; == K for one scale per row */
	int32_t qmin, qmax;   /* e.g. [-7, 7] restricted int4, [-2, 1] full-range int2 */
	float *scale;         /* C * ceil(K / group_size) entries, row-major, finite and > 0 */
	enum qt_numfmt fmt;   /* QT_FMT_INT (0): integer codes */
};

/* Scales per row: ceil(K / group_size). */
static inline int64_t qt_wgrid_ngroups(const struct qt_wgrid *g)
{
	return (g->K + g->group_size - 1) / g->group_size;
}

/* Scale of element (row, col). */
static inline float qt_wgrid_scale(const struct qt_wgrid *g, int64_t row, int64_t col)
{
	return g->scale[row * qt_wgrid_ngroups(g) + col / g->group_size];
}

/* The code of x on scale s: the rounding rule above for integers; for a
 * format, x / s (exact in binary64) to the nearest element, ties to even,
 * saturating (qt_numfmt_encode_div, the rule of lib/quant/wformat.c). */
static inline int32_t qt_wgrid_code(const struct qt_wgrid *g, float x, float s)
{
	return g->fmt == QT_FMT_INT ? qt_quantize_small_range(x, s, 0, g->qmin, g->qmax)
				    : (int32_t)qt_numfmt_encode_div(g->fmt, x, s);
}

/* What code stands for before its scale: the integer itself, or the
 * format's element value (exact in double and in float). */
static inline double qt_wgrid_elem(const struct qt_wgrid *g, int32_t code)
{
	return g->fmt == QT_FMT_INT ? (double)code : (double)qt_numfmt_elem_decode(g->fmt, (uint32_t)code);
}

/* The value of code on scale s, in float: s * code, or s * the element. */
static inline float qt_wgrid_value(const struct qt_wgrid *g, int32_t code, float s)
{
	return s * (float)qt_wgrid_elem(g, code);
}

/*
 * Check the shape and code range of g: C, K >= 1, 1 <= group_size <= K,
 * qmin <= 0 < qmax (0 must be a code), |qmin|, qmax <= 2^20, C * K <= 2^40. With
 * check_scales, also every scale finite and > 0. `what` names the layer in
 * the message (borrowed, may be NULL). QT_E_INVALID_ARG / QT_E_NUMERIC.
 */
enum qt_status qt_wgrid_check(const struct qt_wgrid *g, int check_scales, const char *what);

/*
 * Scales by today's rule: per (row, group) slot, max|w| / qmax, computed in
 * double and rounded once to float; an all-zero slot (a pruned channel)
 * borrows the largest scale of the matrix (1 if the matrix is all zero), and
 * a scale below FLT_MIN becomes FLT_MIN so it stays a normal float. W is
 * C x K row-major (borrowed); writes g->scale. QT_E_NUMERIC if a weight is
 * not finite.
 */
enum qt_status qt_wscale_absmax(const float *W, struct qt_wgrid *g, const char *what);

struct qt_wscale_opts {
	int steps;          /* shrink factors per base scale; 0: 100 */
	double min_factor;  /* smallest shrink factor, in (0, 1]; 0: 0.2 */
};

/*
 * Scales that minimise the squared rounding error per (row, group) slot,
 * sum_k h[k] (w[k] - scale * code[k])^2, with h = h_diag (K entries, e.g.
 * diag(H) of the layer's input, borrowed) or all ones when h_diag is NULL.
 * Candidates, in this order: the absmax scale times `steps` factors evenly
 * spaced from 1 down to min_factor; for a full-range grid (|qmin| > qmax)
 * then max|w| / -qmin times the same factors and the tightest unclipped scale
 * max(max w / qmax, max -w / -qmin). The first candidate with the smallest
 * error wins, so the result is deterministic and never has a larger error
 * than absmax (the first candidate). Errors are summed in double. All-zero
 * slots get the absmax rule's borrowed scale. o may be NULL (defaults).
 */
enum qt_status qt_wscale_mse(const float *W, struct qt_wgrid *g, const double *h_diag,
			     const struct qt_wscale_opts *o, const char *what);

/* Round-to-nearest codes of W (C x K, borrowed) on g: codes_out[C * K]. */
void qt_wgrid_round(const float *W, const struct qt_wgrid *g, int32_t *codes_out);

/* sum over all elements of h[col] (W - scale * code)^2 in double, h = h_diag
 * or ones when NULL: the (weighted) weight error of codes on g. */
double qt_wgrid_error(const float *W, const struct qt_wgrid *g, const int32_t *codes, const double *h_diag);

#endif
