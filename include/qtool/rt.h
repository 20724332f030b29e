/*
 * The FP32 reference executor. It runs a qt_graph node by node in topological
 * order, inferring shapes from the concrete inputs, and frees each
 * intermediate after its last consumer, so peak memory is bounded by the
 * model and the batch, never the dataset.
 */
#ifndef QTOOL_RT_H
#define QTOOL_RT_H

#include "qtool/graph.h"

struct qt_rt;

/*
 * Called after each node output is computed (calibration hooks here; the
 * float simulation of a quantized model fake-quantizes `t` in place).
 * `value` is the index in the graph; `t` is borrowed for the call only and
 * may be modified but not reshaped or reallocated.
 * Return non-QT_OK to abort the run with that status.
 */
typedef enum qt_status (*qt_rt_observer)(void *user, int value, struct qt_tensor *t);

struct qt_rt_stats {
	size_t peak_bytes; /* peak bytes of live activations (excluding constants) */
	int n_op_types;
	const char *op_type[128];
	double op_seconds[128];
	int64_t op_calls[128];
};

/*
 * Prepare to run g (borrowed: must outlive the runtime). Refuses graphs with
 * unsupported ops, listing every one. *out is owned by the caller.
 */
QT_API enum qt_status qt_rt_new(const struct qt_graph *g, struct qt_rt **out);
QT_API void qt_rt_free(struct qt_rt *rt);

/* Attach an observer for every node output (NULL to detach). */
QT_API void qt_rt_set_observer(struct qt_rt *rt, qt_rt_observer fn, void *user);
/* Keep every intermediate value (for debugging and tests) instead of freeing it. */
QT_API void qt_rt_keep_all(struct qt_rt *rt, int keep);

/*
 * Run once. `inputs` has g->n_inputs tensors in graph-input order (borrowed).
 * `outputs` receives g->n_outputs tensors, owned by the caller (qt_tensor_free).
 */
QT_API enum qt_status qt_rt_run(struct qt_rt *rt, const struct qt_tensor *inputs, struct qt_tensor *outputs);

/*
 * Running a graph in segments (the layer-wise data engine, calib/layerdata.c):
 * qt_rt_begin_at drops every value and starts a run at node `first`, holding
 * the given values (the frontier: what nodes at or after `first` read that
 * earlier nodes or the graph inputs made). It takes ownership of
 * tensors[0..n) (they are zeroed). With first == 0 the values are graph inputs,
 * checked and observed as qt_rt_run does. qt_rt_run_nodes runs nodes
 * [first, last) of the topological order; values no later node reads are
 * freed as usual. qt_rt_take_value moves value v out to *out (owned by the
 * caller). On error the runtime holds no values.
 */
QT_API enum qt_status qt_rt_begin_at(struct qt_rt *rt, int first, const int *vals, struct qt_tensor *tensors, int n);
QT_API enum qt_status qt_rt_run_nodes(struct qt_rt *rt, int first, int last);
QT_API enum qt_status qt_rt_take_value(struct qt_rt *rt, int v, struct qt_tensor *out);

/* Cumulative statistics since qt_rt_new. */
QT_API const struct qt_rt_stats *qt_rt_stats(const struct qt_rt *rt);

/* Borrowed view of value v after a run with qt_rt_keep_all(rt, 1); NULL if not computed. */
QT_API const struct qt_tensor *qt_rt_value(const struct qt_rt *rt, int v);

/*
 * Concrete shape for graph input i: declared dims, with every symbolic or
 * unknown dim set to `batch` (the first) or 1 (others). Returns the rank, or
 * -1 when the input declares no shape.
 */
QT_API int qt_graph_input_dims(const struct qt_graph *g, int i, int64_t batch, int64_t *dims_out);

/*
 * Constant folding (lib/rt/fold.c; here because it runs the FP32 kernels):
 * every node whose present inputs are all constants, or a Shape/Size of a
 * value whose declared shape is fully static (never a graph input, whose
 * symbolic dims vary), is run once and its outputs become initializers;
 * values only they read are dropped. Nodes producing graph outputs, random
 * ops and outputs over 64 MiB stay. A kernel that refuses its inputs leaves
 * the node in place. *n_out (may be NULL) gets the number folded.
 */
QT_API enum qt_status qt_pass_fold_constants(struct qt_graph *g, int *n_out);

/*
 * The preparation that makes exported graphs quantizable, before BN folding:
 * qt_pass_fold_constants, qt_pass_unshare_weights, qt_pass_fold_affine,
 * qt_pass_fuse_layernorm (qtool/quant.h). The FP32 function of g is unchanged
 * up to float rounding.
 */
QT_API enum qt_status qt_pass_prepare_import(struct qt_graph *g);

/*
 * The OpenBLAS kernel set the FP32 runtime's sgemm uses ("SkylakeX",
 * "Haswell", ...; static storage). OpenBLAS chooses it when it loads, from the
 * CPU model; on a CPU it does not know it falls back to generic SSE3 kernels
 * ("Prescott"). qt_rt_blas_core_wanted returns the OPENBLAS_CORETYPE value
 * that this CPU's ISA supports when that fallback was taken (several times
 * faster), else NULL. The variable is read only at load time: a program sets
 * it and re-executes itself (as the qtool CLI does), or its user sets it.
 */
QT_API const char *qt_rt_blas_core(void);
QT_API const char *qt_rt_blas_core_wanted(void);

/* 1 when (domain, op_type) has a kernel at this opset. */
QT_API int qt_rt_op_supported(const char *domain, const char *op_type, int opset);
/*
 * Write the names of every unsupported op type in g, comma separated and
 * deduplicated, into buf. Returns how many distinct unsupported types.
 */
QT_API int qt_rt_unsupported_ops(const struct qt_graph *g, char *buf, size_t cap);

#endif
