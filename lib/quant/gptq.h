/*
 * GPTQ: codes for one layer's weight matrix on a fixed grid, chosen column by
 * column so that each column's rounding error is compensated by the columns
 * not yet quantized, weighted by the layer input's second moment H (internal;
 * gptq.c states the algorithm, its rounding and its float use).
 */
#ifndef QTOOL_LIB_QUANT_GPTQ_H
#define QTOOL_LIB_QUANT_GPTQ_H

#include "quant/wgrid.h"

struct qt_gptq_opts {
	double damp;       /* added to diag(H): damp * mean(diag(H)); 0: 0.01 */
	int act_order;     /* 1: quantize columns by descending diag(H) */
	int block;         /* columns per lazy update, 1..1024; 0: 128 */
	int max_retries;   /* times the damping is multiplied by 10 if H is not
			      positive definite; 0: 4, -1: none */
	const char *name;  /* the layer, for messages (borrowed, may be NULL) */
};

struct qt_gptq_stats {
	int64_t dead_cols; /* columns with H_jj == 0: weights set to 0 */
	int retries;       /* damping increases needed (0: the first worked) */
	double damp;       /* damping finally used, as a fraction of mean diag(H) */
	/* sum over rows of (W - Q) H' (W - Q)^T / 2 with H' the damped H and W
	 * with dead columns zeroed; for H = 2 X^T X / n this is the mean squared
	 * output error per input row ||(W - Q) X^T||^2 / n plus the damping term. */
	double out_err;
};

/*
 * Codes for W (C x K row-major, borrowed) on grid g (scales fixed beforehand
 * and kept: with act_order too, column j uses the scale of its own group).
 * H: K x K row-major, double, 2 X^T X / n of the layer's input; only its
 * lower triangle (H[i*K + j], i >= j) is read, and the whole array is
 * consumed (overwritten). codes_out: C * K int32 in [qmin, qmax], W's
 * column order. stats_out may be NULL; o may be NULL (defaults).
 *
 * Errors: QT_E_INVALID_ARG (grid, options), QT_E_NUMERIC (non-finite W or
 * H, negative diag(H), H not positive definite even after the retries),
 * QT_E_NOMEM. The message names o->name. codes_out is unspecified on error.
 */
enum qt_status qt_gptq(const float *W, double *H, const struct qt_wgrid *g, const struct qt_gptq_opts *o,
		       int32_t *codes_out, struct qt_gptq_stats *stats_out);

/* Lower Cholesky factor of the n x n row-major A (leading dimension lda) in
 * place in its lower triangle, in blocks of nb (DTRSM, DSYRK); the strict
 * upper triangle is not touched. Returns -1, or the index of the first pivot
 * that is not > 0 (or not finite). */
int64_t qt_chol_lower(double *A, int64_t n, int64_t lda, int64_t nb);

#endif
