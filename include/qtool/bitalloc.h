/*
 * Mixed precision: per-layer sensitivities (lib/quant/sensitivity.c), their
 * file (lib/quant/sensfile.c, docs/SENSITIVITY.md) and the integer program
 * that picks one setting per layer (lib/quant/bitalloc_ilp.c).
 *
 * A "setting" is what one layer may take: weight bits and activation bits
 * (w8a8, w4a8, w3a8, w2a8, w4a4, ...), or float (the layer stays FP32).
 * Granularity, group size and code range come from the quantize options and
 * are the same for every setting.
 */
#ifndef QTOOL_BITALLOC_H
#define QTOOL_BITALLOC_H

#include "qtool/quant.h"

/* ---- The integer program ---- */

/*
 * One binary x[l][s] per (layer, setting), sum_s x[l][s] = 1 for every layer;
 * minimise sum cost[l][s] x[l][s] subject to the constraints that are set:
 *   sum bytes[l][s] x[l][s]           <= max_bytes
 *   sum params[l] wbits[s] x[l][s]    <= floor(max_avg_wbits * sum params + 1e-6)
 *   sum bops[l][s] x[l][s]            <= max_bops
 * Arrays are row-major [n_layers][n_settings] and borrowed.
 */
struct qt_bitalloc {
	int n_layers, n_settings;
	const double *cost;    /* finite */
	const int64_t *bytes;  /* >= 0 */
	const int64_t *params; /* [n_layers], >= 0: weights of each layer */
	const int *wbits;      /* [n_settings]: bits per weight of each setting (32 for float) */
	const int64_t *bops;   /* >= 0, or NULL (then max_bops must be 0) */
	int64_t max_bytes;     /* 0: no size constraint */
	double max_avg_wbits;  /* 0: no average-bits constraint */
	int64_t max_bops;      /* 0: no bit-operations constraint */
};

/* What a choice costs and takes (qt_bitalloc_eval). */
struct qt_bitalloc_result {
	double objective;  /* sum of the chosen costs */
	int64_t bytes;     /* sum of the chosen bytes */
	int64_t wbits_sum; /* sum params[l] * wbits[choice[l]] */
	double avg_wbits;  /* wbits_sum / sum params (0 when there are no params) */
	int64_t bops;      /* sum of the chosen bops (0 without bops) */
};

/*
 * Solve p to optimality with GLPK's branch and bound (glp_intopt, presolve
 * on, terminal output off). choice_out[l] (n_layers entries) receives the
 * setting index of layer l; res_out (may be NULL) what it costs. The choice
 * is checked in exact integer arithmetic against every constraint before it
 * is returned, so it is never over budget.
 * Errors: QT_E_INVALID_ARG for a malformed problem; QT_E_NUMERIC when no
 * choice meets the constraints, with a message that gives the smallest
 * feasible value of each constraint (every layer at its smallest setting),
 * e.g. "weight size budget 10000 bytes is infeasible: the smallest plan
 * takes 45123 bytes".
 */
QT_API enum qt_status qt_bitalloc_solve(const struct qt_bitalloc *p, int *choice_out,
					struct qt_bitalloc_result *res_out);

/* What choice (n_layers setting indices, borrowed) costs and takes; 1 when it
 * meets every constraint of p, else 0. */
QT_API int qt_bitalloc_eval(const struct qt_bitalloc *p, const int *choice, struct qt_bitalloc_result *res_out);

/* Parse a size: "120000", "120KB" / "120K" (x 1000), "120KiB" (x 1024), "1.5MB"
 * / "1.5M" (x 10^6), "1.5MiB" (x 2^20), "2GB"; a trailing "B" alone means
 * bytes. Rounded down to whole bytes. 0 on success, -1 for anything else or a
 * value < 1 byte or >= 2^53. */
QT_API int qt_parse_size(const char *s, int64_t *bytes_out);

#endif
