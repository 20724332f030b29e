/*
 * The layer-wise data engine: streams calibration samples through a graph and
 * gives a PTQ method, for each weighted node in turn, the statistics of the
 * input that node's weight multiplies.
 *
 * A weighted node is seen as G matrices (G = the Conv's group count, else 1)
 * of shape [C/G, K] multiplying input rows of K values: for Conv, one row per
 * output position and group, in im2col order (input channel of the group,
 * then kernel row, then kernel column; padding reads 0); for Gemm, MatMul
 * and ai.qtool MatMulBias, every row of the input's last axis. Per group it
 * accumulates sum(x x^T) (K x K) and sum(x) (K), in double, over every row of
 * every sample.
 *
 * Nodes are processed in topological order. To reach node t_k the engine
 * runs only the nodes between t_{k-1} and t_k, starting from the values live
 * at t_{k-1} (the frontier) that it saved for every batch in a temporary
 * file: each node runs once per sample over the whole walk, and memory holds
 * one batch's frontier plus one node's statistics, never the dataset. After a
 * node's statistics are complete the callback runs; whatever it does to the
 * graph (a quantized, dequantized weight in place of the float one: the node
 * is then "simulated") is what the later nodes' inputs are computed with.
 * With an observer (qt_fakequant_observer) every activation is rounded to its
 * grid: the sequential mode, where each node sees the error of all before it.
 *
 * Float: statistics are computed in float per chunk of rows and summed in
 * double.
 */
#ifndef QTOOL_LAYERDATA_H
#define QTOOL_LAYERDATA_H

#include "qtool/rt.h"

struct qt_dataset;

struct qt_layer_stats {
	int node;
	int groups;    /* G */
	int64_t K;     /* columns of each group's matrix */
	int64_t rows;  /* rows seen per group */
	double *xtx;   /* G * K * K: sum over rows of x x^T, or NULL when not asked */
	double *xsum;  /* G * K: sum over rows of x */
	/* The same over the held-out samples (qt_layerdata_opts.holdout_from),
	 * kept apart so a method can be judged on data it did not fit. */
	int64_t rows_holdout;
	double *xtx_holdout; /* G * K * K, or NULL */
	/* With a twin stream (qt_layerdata_opts.twin_swap): per group the sums
	 * over the same (not held-out) rows of x x_fp^T (K x K, row i from
	 * this stream's column i) and of x_fp, where x_fp is the row the FP32
	 * model gives for the same sample and position; else NULL. */
	double *xcross;
	double *xsum_fp;
};

/* Called once per target node, in topological order, with its complete
 * statistics (borrowed for the call). May rewrite that node's constant
 * inputs in g. Return non-QT_OK to stop. */
typedef enum qt_status (*qt_layer_fn)(void *user, struct qt_graph *g, const struct qt_layer_stats *s);

struct qt_layerdata_opts {
	int batch;            /* samples per run (> 0) */
	int want_xtx;         /* accumulate sum(x x^T) (else only sums) */
	/* Samples from this index on (a multiple of batch; 0 = none) are held
	 * out: their sum(x x^T) goes to xtx_holdout instead (with want_xtx). */
	int64_t holdout_from;
	qt_rt_observer observer; /* applied to every node output and the graph input, or NULL */
	void *observer_user;
	/* A twin stream (with want_xtx): each batch also runs from its own
	 * frontier with twin_swap(twin_user, g, 1) in force while it runs (it
	 * puts the FP32 model's weights back; (.., 0) undoes it) and with
	 * twin_observer, and the statistics carry xcross and xsum_fp. Twice
	 * the runs, and a second frontier file. NULL: no twin. */
	enum qt_status (*twin_swap)(void *user, struct qt_graph *g, int fp32);
	void *twin_user;
	qt_rt_observer twin_observer;
	void *twin_observer_user;
	/* Called with every chunk of rows before they are summed (may be
	 * NULL): n rows of K columns of group `group` of the current target's
	 * matrix view (borrowed for the call). A search that needs more than
	 * second moments (lib/quant/actrange.c) reads the rows here. */
	enum qt_status (*rows_fn)(void *user, const struct qt_layer_stats *s, int group, const float *rows,
				  int64_t n);
	void *rows_user;
	/* 1: apply the observer again to the values read back from the
	 * previous target's frontier, so a change fn made to a value's grid
	 * reaches the later nodes (the observer must be idempotent). */
	int reobserve_frontier;
	/* Progress: called after each target node (may be NULL). */
	void (*progress)(void *user, int done, int total, const char *node_name);
	void *progress_user;
};

/*
 * Walk the targets (node indices, strictly increasing; each a weighted op per
 * qt_layer_view_ok) over every sample of ds (rewound first; borrowed), which
 * feeds g's single graph input. g is borrowed and may be rewritten by fn
 * between nodes. Errors name the node or the dataset.
 */
QT_API enum qt_status qt_layerdata_run(struct qt_graph *g, struct qt_dataset *ds, const int *targets, int n_targets,
				       const struct qt_layerdata_opts *o, qt_layer_fn fn, void *user);

/* 1 when node n can be seen as G matrices [C/G, K] (2-D Conv; Gemm without
 * transA; MatMul / MatMulBias with a 2-D constant weight); sets *groups_out
 * and *K_out from its weight. */
QT_API int qt_layer_view_ok(const struct qt_graph *g, const struct qt_node *n, int *groups_out, int64_t *K_out);

#endif
