/*
 * Internal interface of the quantize stage (lib/quant): the layer view every
 * weight method works on, and the helpers the stage files share.
 */
#ifndef QT_QUANT_INT_H
#define QT_QUANT_INT_H

#include "qtool/quant.h"
#include "quant/wgrid.h"

/* The weight's output-channel axis: Conv [M, C/g, kH, kW] 0; ConvTranspose
 * [C, M, kH, kW] 1; Gemm 0 with transB, else 1; MatMul and MatMulBias [K, N] 1. */
int qt_weight_axis(const struct qt_node *n);

/* 1 when node n's weight and bias can be quantized (constant float weight
 * read by this node only, foldable bias, shapes the integer runtime takes),
 * whatever its activations. */
int qt_quant_weight_ok(const struct qt_graph *g, const struct qt_node *n);

/*
 * One planned layer during the weight stage. Its weight as a matrix w
 * [C][K]: row c is output channel c, columns run over the other axes in
 * row-major order (Conv: input channel of the group, kernel row, kernel
 * column, the im2col order; MatMul [K, N]: the input feature), which is the
 * order qt_qparam_index groups in. A grouped Conv's rows come in G blocks of
 * C/G, each multiplying its own input group.
 */
struct qt_qlayer {
	int node;
	const struct qt_layer_plan *plan;
	int axis;               /* output-channel axis of the weight tensor */
	int64_t C, K;
	int groups;             /* G (Conv group), else 1 */
	enum qt_qscheme scheme; /* scheme of the weight's qparams */
	float *w;               /* [C][K] the float weights (FP32 model's, after graph rewrites) */
	int32_t *codes;         /* [C][K] chosen codes */
	struct qt_wgrid grid;   /* scales [C][ceil(K / group_size)] */
	float *bias;            /* [C] float bias as corrected, or NULL when the node has none */
	double *mean_fp;        /* [G][K] mean input row in the FP32 model (bias correction), or NULL */
	/* The sequential twin (quantize.c, twin_swap): the graph's FP32 and
	 * simulated weight tensors once the layer is simulated, and the FP32
	 * bias as it was before bias correction. */
	struct qt_tensor *w_fp_init, *w_sim_init;
	float *bias_fp;
	double err_rtn, err;    /* held-out relative output errors (struct qt_layer_report), or -1 */
	/* A weight number format other than QT_FMT_INT (qt_wformat_round): codes
	 * are element codes, grid.scale the decoded scales, and for MX and NVFP4
	 * scale_code their bytes ([C][ngroups]) and tscale NVFP4's tensor scale. */
	uint8_t *scale_code;
	float tscale;
};

/*
 * Round layer L's weights to its plan's weight format (lib/quant/wformat.c),
 * to nearest with ties to even (qtool/numfmt.h), filling L->codes,
 * L->grid.scale and, for block formats, L->scale_code and L->tscale:
 *  - plain minifloats: scale per (row, group) = max|w| / the element's
 *    largest value (binary64, rounded once to float; an all-zero slot
 *    borrows the matrix's largest scale, or 1; at least FLT_MIN), group
 *    scales rounded to the two-level grid the .qmod stores;
 *  - MX: blocks of 32 along each row with E8M0 scales by L->plan->mx_rule;
 *  - NVFP4: blocks of 16, tensor scale from the matrix's max|w|.
 * L->grid.group_size must be set (the block size for block formats); sets
 * L->grid.fmt, so the grid's codes are the format's from then on.
 */
enum qt_status qt_wformat_round(struct qt_qlayer *L);

/* Re-fit the scales of `codes` on grid g (C rows of W, K x K input second
 * moment H) to the least output error for those codes (lib/quant/wrefit.c).
 * Rows whose fit fails or does not improve keep their scales. */
enum qt_status qt_wscale_refit(const float *W, const double *H, struct qt_wgrid *g, const int32_t *codes);

/* Empirical bias correction of layer L (lib/quant/biascorr.c): with the
 * mean input rows the quantized model (mean_q) and the FP32 model
 * (L->mean_fp, or mean_q when NULL) give it, subtract from L->bias the mean
 * output error sum_k (Wq[c][k] mean_q[k] - W[c][k] mean_fp[k]). */
void qt_biascorr_apply(struct qt_qlayer *L, const double *mean_q);

/*
 * Choose the input range of each of the nodes (planned layers in
 * topological order whose input has per-tensor integer qparams) on that
 * layer's output error over ds (lib/quant/actrange.c); the qparams are
 * changed in place. centered[i]: node i's bias will be corrected, so its
 * mean output error per channel does not count. stats_out gets what was done.
 */
enum qt_status qt_actrange_search(struct qt_graph *g, const int *nodes, const char *centered, int n_nodes,
				  struct qt_dataset *ds, int batch, struct qt_actrange_stats *stats_out);

/* The sequential mode's FP32 target (lib/quant/fp32target.c): rows x K
 * weights W re-aimed at the FP32 model's outputs, w' = w B^T A^-1 with
 * A = sum x_q x_q^T and B = sum x_q x_fp^T (K x K, double) and A damped by
 * damp * mean(diag A). Wt_out = W where A has no input or cannot be
 * factored even so. Errors: QT_E_NOMEM. */
enum qt_status qt_fp32_target(const float *W, int64_t rows, int64_t K, const double *A, const double *B, double damp,
			      float *Wt_out);

#endif
