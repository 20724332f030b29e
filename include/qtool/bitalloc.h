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
 *   sum ns[l][s] x[l][s]              <= max_ns
 * Arrays are row-major [n_layers][n_settings] and borrowed.
 */
struct qt_bitalloc {
	int n_layers, n_settings;
	const double *cost;    /* finite */
	const int64_t *bytes;  /* >= 0 */
	const int64_t *params; /* [n_layers], >= 0: weights of each layer */
	const int *wbits;      /* [n_settings]: bits per weight of each setting (32 for float) */
	const int64_t *bops;   /* >= 0, or NULL (then max_bops must be 0) */
	const int64_t *ns;     /* >= 0 nanoseconds per sample, or NULL (then max_ns must be 0) */
	/* 1 where layer l may take setting s (pinned layers allow one), or
	 * NULL for every setting everywhere; every layer needs one. */
	const unsigned char *allowed;
	int64_t max_bytes;     /* 0: no size constraint */
	double max_avg_wbits;  /* 0: no average-bits constraint */
	int64_t max_bops;      /* 0: no bit-operations constraint */
	int64_t max_ns;        /* 0: no latency constraint */
};

/* What a choice costs and takes (qt_bitalloc_eval). */
struct qt_bitalloc_result {
	double objective;  /* sum of the chosen costs */
	int64_t bytes;     /* sum of the chosen bytes */
	int64_t wbits_sum; /* sum params[l] * wbits[choice[l]] */
	double avg_wbits;  /* wbits_sum / sum params (0 when there are no params) */
	int64_t bops;      /* sum of the chosen bops (0 without bops) */
	int64_t ns;        /* sum of the chosen ns (0 without ns) */
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
 * takes 45123 bytes". Only allowed settings count, there and everywhere.
 */
QT_API enum qt_status qt_bitalloc_solve(const struct qt_bitalloc *p, int *choice_out,
					struct qt_bitalloc_result *res_out);

/* What choice (n_layers setting indices, borrowed) costs and takes; 1 when it
 * meets every constraint of p and takes only allowed settings, else 0. */
QT_API int qt_bitalloc_eval(const struct qt_bitalloc *p, const int *choice, struct qt_bitalloc_result *res_out);

/* Parse a size: "120000", "120KB" / "120K" (x 1000), "120KiB" (x 1024), "1.5MB"
 * / "1.5M" (x 10^6), "1.5MiB" (x 2^20), "2GB"; a trailing "B" alone means
 * bytes. Rounded down to whole bytes. 0 on success, -1 for anything else or a
 * value < 1 byte or >= 2^53. */
QT_API int qt_parse_size(const char *s, int64_t *bytes_out);

/* ---- Settings and sensitivities ---- */

struct qt_dataset;
struct qt_calib_table;

/* One candidate setting of a layer: weight and activation bits, or float
 * (wbits = abits = 32: the layer stays FP32), and the weights' number
 * format (QT_FMT_INT, the zero value, for integer weights; any other:
 * wbits is its element bits). Activations are integers of abits. */
struct qt_bits_setting {
	int wbits, abits;
	enum qt_numfmt wfmt;
};

/* Longest qt_bits_setting_str, with its NUL. */
#define QT_SETTING_STR_MAX 24

/* Parse "w8a8", "w4a8", "w3a4", ..., "float", or a weight format of
 * qt_numfmt_parse ("int4", "fp4_e2m1", "mxfp4", "nvfp4", ...) with 8-bit
 * activations, or with 4-bit ones as "FORMAT:a4"; "int4" is w4a8. 0 on
 * success. */
QT_API int qt_bits_setting_parse(const char *s, struct qt_bits_setting *out);
/* "w4a8", "fp4_e2m1", "mxfp4:a4" or "float" into buf (at least
 * QT_SETTING_STR_MAX bytes); returns buf. It parses back to the same setting. */
QT_API const char *qt_bits_setting_str(const struct qt_bits_setting *s, char *buf);
/* 1 when a and b are the same setting. */
QT_API int qt_bits_setting_eq(const struct qt_bits_setting *a, const struct qt_bits_setting *b);
/* Parse a comma-separated list into out (at most cap); returns the count, or
 * -1 with *bad_out the offending item (static buffer) for an unknown or
 * repeated setting or too many. */
QT_API int qt_bits_settings_parse(const char *list, struct qt_bits_setting *out, int cap, const char **bad_out);

/*
 * Per-layer sensitivities: for each planned layer l and setting s, cost[l][s]
 * is the mean over the samples of the output loss of the model in which
 * only layer l takes setting s (its weights quantized and dequantized, its
 * input activation rounded to its grid; every other layer and activation
 * FP32), against the FP32 model: the KL divergence KL(p_fp32 || p) of the
 * softmax of the outputs when every output is [N, classes] (logits, or
 * probabilities from a Softmax), else the mean squared error per element.
 * bytes[l][s] is what the .qmod stores for the layer's weight at s: packed
 * codes plus scales and zero points (docs/FORMAT.md), as `qtool inspect`
 * counts them; 4 bytes per weight for float.
 */
struct qt_sens {
	int n_layers, n_settings;
	struct qt_bits_setting *settings; /* [n_settings] */
	char **names;     /* [n_layers] layer names as --layer patterns match them */
	char **ops;       /* [n_layers] op types */
	int64_t *params;  /* [n_layers] weights */
	int64_t *macs;    /* [n_layers] multiply-accumulates per sample (0 when not measured) */
	double *cost;     /* [n_layers][n_settings] */
	int64_t *bytes;   /* [n_layers][n_settings] */
	/* [n_layers][n_settings]: SQNR in dB of layer l's own output against
	 * FP32's in the run that measured cost[l][s]; NaN where not measured (a
	 * float setting, a file without it). */
	double *sqnr;
	/* [n_layers][n_settings]: nanoseconds per sample the integer runtime
	 * took for the layer's node in the model quantized uniformly at s (the
	 * fastest of a few runs on this machine); -1 where not measured (float,
	 * or a file without it). */
	int64_t *ns;
	char loss[16];    /* "kl", "mse" or "hessian-proxy" */
	int64_t samples;
	/* The grid every setting used (the quantize options it is valid for). */
	enum qt_granularity gran;
	int group_size;
	int wfull;
	unsigned methods;
	char model_sha256[65];
	char data[256];   /* dataset spec the costs were measured on, "" if unknown */
};
QT_API void qt_sens_free(struct qt_sens *s);
/* Sum over the layers of cost[.][k]: the predicted loss of the model with
 * every layer at setting k (a layer's share of it is cost[l][k] / this). */
QT_API double qt_sens_setting_total(const struct qt_sens *s, int k);

/* Progress of qt_sens_measure: `done` of `total` batches; `what` (may be "")
 * says what is being measured. */
typedef void (*qt_sens_progress_fn)(void *user, const char *what, int64_t done, int64_t total);

struct qt_sens_opts {
	/* Which layers, and the grid: defaults (gran, group size, full range,
	 * calibration method, input shapes) and --layer / --keep-float edits of
	 * a plan; layers it keeps float are left out. Borrowed. Methods that
	 * need data (GPTQ, bias correction) run on o->quant->data with FP32
	 * inputs, once per setting for the whole model. */
	const struct qt_quant_opts *quant;
	const struct qt_bits_setting *settings; /* borrowed */
	int n_settings;
	struct qt_dataset *data; /* the samples costs are measured on (borrowed, rewound) */
	int batch;               /* samples per run (0: 32; a fixed batch dim of the model wins) */
	qt_sens_progress_fn progress;
	void *progress_user;
	/* Optional: time the integer runtime on `g` (quantized uniformly at one
	 * setting, borrowed for the call): ns_out[i] = nanoseconds per sample of
	 * node nodes[i]. Called once per quantized setting. */
	enum qt_status (*time_nodes)(void *user, const struct qt_graph *g, const int *nodes, int n, int64_t *ns_out);
	void *time_user;
	/* 1: estimate the costs by the Hessian-trace proxy (one FP32 pass: the
	 * layer input's mean square times the weight perturbation, plus the
	 * input rounding noise through the weights; loss "hessian-proxy")
	 * instead of measuring each (layer, setting). */
	int proxy;
};

/*
 * Measure the sensitivities of the FP32 ONNX model at `model` with the
 * activation ranges of `calib` (borrowed). One FP32 reference pass per batch;
 * each (layer, setting) reruns only the nodes from that layer on, from the
 * reference values live there (qt_rt_begin_at). *out is owned
 * by the caller (qt_sens_free). Errors name the model, node or dataset.
 */
QT_API enum qt_status qt_sens_measure(const char *model, const struct qt_calib_table *calib,
				      const struct qt_sens_opts *o, struct qt_sens *out);

/* Write s as JSON (docs/SENSITIVITY.md) into a malloc'd NUL-terminated
 * string *json_out (owned by the caller); model_path is recorded as given. */
QT_API enum qt_status qt_sens_to_json(const struct qt_sens *s, const char *model_path, char **json_out);
/*
 * Read and validate a sensitivity file: format and version, settings, per
 * layer finite costs >= 0 and bytes >= 0 for every setting; any problem is
 * QT_E_FORMAT naming the file and the place. *out owned by the caller.
 */
QT_API enum qt_status qt_sens_read(const char *path, struct qt_sens *out);
/* The same from len bytes at buf (borrowed); label names the source in messages. */
QT_API enum qt_status qt_sens_read_mem(const void *buf, size_t len, const char *label, struct qt_sens *out);

#endif
