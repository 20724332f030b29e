/*
 * AdaRound: learned up/down rounding of one layer's weights on a fixed grid,
 * against the layer's output error (internal; adaround.c states the
 * algorithm, its float use and why it is deterministic).
 */
#ifndef QTOOL_LIB_QUANT_ADAROUND_H
#define QTOOL_LIB_QUANT_ADAROUND_H

#include "quant/wgrid.h"

struct qt_adaround_opts {
	int iters;          /* Adam steps; 0: 1000 */
	double lr;          /* Adam step size on the rounding logits; 0: 0.05 */
	double lambda;      /* weight of the rounding regulariser (per weight, mean); 0: 1 */
	double warmup;      /* fraction of iters without the regulariser; 0: 0.2 */
	double beta_start, beta_end; /* regulariser sharpness, cosine-annealed; 0: 20, 2 */
	const char *name;   /* the layer, for messages (borrowed, may be NULL) */
};

struct qt_adaround_stats {
	double err_rtn;     /* tr((W - Q) H (W - Q)^T) with round-to-nearest codes */
	double err;         /* the same with the returned codes */
	int64_t flipped;    /* codes that differ from round-to-nearest */
	int64_t undecided;  /* weights whose soft rounding ended in (0.01, 0.99) */
	int kept_rtn;       /* 1 when the learned codes were not better and RTN's were returned */
};

/*
 * Codes for W (C x K row-major, borrowed) on grid g (scales fixed; borrowed)
 * that minimise tr((W - Q) H (W - Q)^T), each code the floor or the ceiling
 * of w / scale (kept in [qmin, qmax]). H: K x K row-major double (borrowed,
 * not modified), the layer input's second moment X^T X / n (any positive
 * multiple works); only its lower triangle (i >= j) is read. codes_out: C * K
 * int32. Never worse than round-to-nearest on this objective: if the learned
 * codes are not strictly better, RTN's are returned (stats say so).
 *
 * Errors: QT_E_INVALID_ARG (grid, options), QT_E_NUMERIC (non-finite W or H),
 * QT_E_NOMEM. The message names o->name.
 */
enum qt_status qt_adaround(const float *W, const double *H, const struct qt_wgrid *g,
			   const struct qt_adaround_opts *o, int32_t *codes_out, struct qt_adaround_stats *stats_out);

#endif
