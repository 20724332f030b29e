/*
 * Quantization: graph preparation passes, quantization parameters, and the
 * quantize stage that turns an FP32 graph plus calibration ranges into a
 * quantized graph (the in-memory form of a .qmod).
 *
 * The quantized graph is the prepared FP32 graph (BatchNormalization folded,
 * Relu/Clip(0,..) fused into their producer's output range) where:
 *  - every float32 activation has per-tensor asymmetric qparams (U8 or U4:
 *    codes in [0, 2^bits - 1], real = scale * (q - zero_point)), except the
 *    float islands: values that only float ops read stay float32 (no
 *    qparams), because their readers would dequantize them at once;
 *  - the weight of each quantized weighted op (qt_is_weighted_op) is replaced by symmetric
 *    codes (S8/S4/S3/S2, zero point 0, per channel of the output axis, per
 *    tensor, or per group along the input axis), stored packed as the value's
 *    init tensor with dtype S8 (=I8), S4, S3 or S2;
 *  - its bias is int32 at scale s_in * s_w[c];
 *  - the node carries its requantization (qt_requant).
 *
 * Rounding at quantize time (float allowed here, offline): codes are
 * nearbyint(x / scale) + zero_point (ties to even), clamped to the range.
 */
#ifndef QTOOL_QUANT_H
#define QTOOL_QUANT_H

#include "qtool/graph.h"

/* Fold BatchNormalization into a preceding Conv/ConvTranspose/Gemm whose
 * output feeds only the BN. Returns the number folded in *n_out. */
QT_API enum qt_status qt_pass_fold_bn(struct qt_graph *g, int *n_out);

/*
 * Give every weighted op (qt_is_weighted_op) whose constant weight or bias is
 * read by other nodes too a value of its own holding the same tensor (shared
 * read-only: passes and the quantizer replace a value's tensor, never write
 * into it), so BN folding and quantization treat each layer alone. Returns
 * the number of values made in *n_out (may be NULL).
 */
QT_API enum qt_status qt_pass_unshare_weights(struct qt_graph *g, int *n_out);

/*
 * Fold y = Conv/Gemm(x) followed by Mul, Div, Add or Sub of y by a constant
 * that is a scalar or one value per output channel (broadcast along the
 * channel axis only) into the layer: W'[c] = W[c] * k[c], b'[c] = b[c] * k[c]
 * for Mul (k = 1/d for Div), b'[c] = b[c] + a[c] for Add (- for Sub(y, a)).
 * Exact in real arithmetic; in float the layer's sums round differently
 * (products computed in double, stored as float). Only when y feeds just that
 * node, the weight and bias are constants of this layer alone, and the Gemm is
 * plain (alpha = beta = 1, no transA). Returns the number folded in *n_out.
 */
QT_API enum qt_status qt_pass_fold_affine(struct qt_graph *g, int *n_out);

/*
 * qtool's own op for a linear layer on an activation of any rank:
 * ai.qtool MatMulBias(A, B, bias) = MatMul(A, B) + bias, with B a constant
 * [K, N] and bias a constant [N] added to every row. ONNX exporters write a
 * linear layer on a 3-D input as MatMul then Add; fused, the bias becomes the
 * integer GEMM's int32 bias instead of a float Add between two
 * quantizations.
 */
#define QT_DOMAIN_QTOOL "ai.qtool"
#define QT_OP_MATMUL_BIAS "MatMulBias"
/*
 * ai.qtool FakeQuant(X) -> Y: X rounded to a number format of qtool/numfmt.h
 * and decoded back to float, same shape. Attributes: format (string, a
 * qt_numfmt_name other than "int"), scale (float: the FP32 scale of a plain
 * minifloat, NVFP4's tensor scale; unused by MX), axis (int: blocks of MX
 * and NVFP4 run along this axis, default 1 for rank >= 2, else 0), rule
 * (int: enum qt_mx_rule, default 0). The quantizer puts one before a layer
 * whose activations use such a format; both runtimes run it in float.
 */
#define QT_OP_FAKE_QUANT "FakeQuant"

/*
 * qtool's LayerNormalization: ONNX's (opset 17) semantics at any opset
 * (normalise over [axis, rank) with the biased variance, 1/sqrt(var +
 * epsilon), times Scale, plus B). qt_pass_fuse_layernorm makes it from the
 * decomposition older exporters write; it runs in float in the integer
 * runtime (dequantize -> FP32 -> quantize), because its mean, variance and
 * 1/sqrt each need more than 8 bits: a token whose variance sits near the
 * bottom of the calibrated range divides by a square root known only to one
 * code.
 */
#define QT_OP_LAYERNORM "LayerNormalization"

/*
 * Fuse the LayerNorm decomposition of exporters before opset 17,
 *   mean = ReduceMean(x, trailing axes), d = Sub(x, mean), Pow(d, 2) (or
 *   Mul(d, d)), var = ReduceMean(., same axes), Sqrt(Add(var, eps)),
 *   n = Div(d, .), optionally Mul(n, gamma) and then Add(., beta),
 * into one ai.qtool LayerNormalization(x, gamma (or a constant 1), beta) with
 * axis -k (k reduced axes) and epsilon eps. Only when every intermediate
 * value is read inside the chain alone and gamma, beta are float constants of
 * at most k dims. The FP32 function is unchanged up to float rounding (the
 * fused kernel accumulates in double). Returns the number fused in *n_out
 * (may be NULL).
 */
QT_API enum qt_status qt_pass_fuse_layernorm(struct qt_graph *g, int *n_out);

/* 1 when node n is an op the quantizer gives integer weights and a
 * requantization: Conv, ConvTranspose, Gemm, MatMul (ai.onnx) and MatMulBias
 * (ai.qtool).
 * The one list the quantizer, the .qmod reader and the integer runtime use. */
QT_API int qt_is_weighted_op(const struct qt_node *n);

/*
 * Why weighted node n of a prepared or quantized graph g does not get (or
 * did not get) integer weights: "weight not constant", "weight shared with
 * another node", "bias not foldable ...", "no integer kernel (...)", ...; NULL
 * when the quantizer quantizes it. A static string.
 */
QT_API const char *qt_quant_skip_reason(const struct qt_graph *g, const struct qt_node *n);

/* Fuse MatMul(A, const [K, N]) followed by Add(., const [N]) (either input
 * order) into MatMulBias. Returns the number fused in *n_out. */
QT_API enum qt_status qt_pass_fuse_matmul_bias(struct qt_graph *g, int *n_out);

/* Range of the codes of a quantized type: [-2^(b-1)+1, 2^(b-1)-1] for signed
 * weights (symmetric, restricted), [0, 2^b - 1] for unsigned activations. */
QT_API void qt_qtype_range(enum qt_dtype qt, int32_t *qmin, int32_t *qmax);
/* The same with the choice of grid: full_range widens a signed weight type
 * (I8, S4, S3, S2) to its whole two's-complement range [-2^(b-1),
 * 2^(b-1)-1] (e.g. [-4, 3] for 3 bits); other types are unchanged. */
QT_API void qt_code_range(enum qt_dtype qt, int full_range, int32_t *qmin, int32_t *qmax);
/* Code range of q's values (qt_code_range(q->qtype, q->full_range, ...)):
 * what the quantizer may write and the .qmod reader accepts. */
QT_API void qt_qparams_code_range(const struct qt_qparams *q, int32_t *qmin, int32_t *qmax);

/*
 * Group scales as a .qmod stores them (QT_SCALE_ROW_U8, docs/FORMAT.md): one
 * f32 S per output channel (its largest group scale) and per group a byte b,
 * scale = S * (b + 1) / 256. The quantizer must compute codes with these
 * values, so it rounds first:
 *  - qt_wscale_storable(q, channels): for a per-group q (count = channels x
 *    groups, channel-major) round every channel's group scales to the
 *    nearest storable value (ratio (b+1)/256 to the channel's largest, ties
 *    to even, at least 1/256) and set q->scale_enc = QT_SCALE_ROW_U8; per
 *    tensor and per channel q are left as they are (f32 scales). Call it
 *    after choosing the scales and before computing codes. QT_E_INVALID_ARG
 *    if count is not a multiple of channels.
 *  - qt_wscale_round_groups(scale, ng): the same for one channel's ng scales
 *    (for a method that fixes a channel's groups one at a time, once all of
 *    that channel's group scales are known).
 *  - qt_wscale_group_decode(S, b): the stored value, (float)(S * (b+1) / 256).
 *  - qt_wscale_group_encode(s, S): the byte b that decodes to exactly s, or
 *    -1 if s is not storable under S.
 * Rows' largest scale decodes to itself (b = 255), so S, the bias scale
 * s_in * S and the requantization multipliers do not change.
 */
QT_API enum qt_status qt_wscale_storable(struct qt_qparams *q, int64_t channels);
QT_API void qt_wscale_round_groups(float *scale, int64_t ng);
QT_API float qt_wscale_group_decode(float S, int b);
QT_API int qt_wscale_group_encode(float s, float S);

/* Asymmetric per-tensor parameters for [lo, hi] (widened to include 0). */
QT_API enum qt_status qt_qparams_asym(float lo, float hi, int bits, float *scale_out, int32_t *zp_out);
/* Quantize one float with (scale, zp) into [qmin, qmax]: nearbyint(x /
 * scale) + zp, ties to even, clamped; NaN gives qmin. */
QT_API int32_t qt_quantize_one(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax);
/* The same for n floats into uint8 codes (0 <= qmin <= qmax <= 255), vectorizable. */
QT_API void qt_quantize_u8(const float *x, size_t n, float scale, int32_t zp, int32_t qmin, int32_t qmax,
			   uint8_t *out);

struct qt_calib_table;
struct qt_dataset;

enum qt_granularity { QT_GRAN_CHANNEL = 0, QT_GRAN_TENSOR, QT_GRAN_GROUP };

/* PTQ methods, as bit flags of a plan entry. Weight methods replace one
 * step of the weight quantizer: scale choice (mse), rounding (gptq), or the
 * float bias after rounding (bias correction). */
#define QT_METHOD_GPTQ (1u << 0)     /* lib/quant/gptq.c: Hessian-aware rounding */
#define QT_METHOD_BIASCORR (1u << 1) /* lib/quant/biascorr.c: empirical bias correction */
#define QT_METHOD_MSE (1u << 2)      /* lib/quant/wscale.c: scales by MSE search */
#define QT_METHOD_ADAROUND (1u << 3) /* lib/quant/adaround.c: learned rounding */
/* Graph rewrites before the plan (the FP32 function is kept; activation
 * ranges are measured again on the rewritten graph, so they need data). */
#define QT_METHOD_CLE (1u << 4)         /* lib/quant/equalize.c: cross-layer equalization */
#define QT_METHOD_SMOOTHQUANT (1u << 5) /* lib/quant/smoothquant.c */
/* Activation ranges searched on the reading layer's output error, after the
 * calibration file's (sequential; needs data). */
#define QT_METHOD_ACTRANGE (1u << 6) /* lib/quant/actrange.c */
/* Weight methods the data engine serves (layer by layer). */
#define QT_METHODS_DATA (QT_METHOD_GPTQ | QT_METHOD_BIASCORR | QT_METHOD_ADAROUND)
#define QT_METHODS_REWRITE (QT_METHOD_CLE | QT_METHOD_SMOOTHQUANT)
/* Every method that needs calibration samples (--data). */
#define QT_METHODS_NEED_DATA (QT_METHODS_DATA | QT_METHODS_REWRITE | QT_METHOD_ACTRANGE)

/*
 * The quantization plan: one record per weighted node of the prepared graph
 * that the quantizer can give integer weights. CLI defaults fill it,
 * per-layer overrides edit it (qt_plan_override), and every later stage reads
 * only it: what is quantized how has one source of truth.
 */
struct qt_layer_plan {
	int node;               /* index into the prepared graph's nodes */
	int wbits;              /* 8, 4, 3 or 2 */
	int abits;              /* bits of the activation this layer reads: 8 or 4 */
	enum qt_granularity gran;
	int group_size;         /* with QT_GRAN_GROUP */
	int wfull;              /* codes use the full two's-complement range ([-2, 1] at 2 bits) */
	unsigned methods;       /* QT_METHOD_* (integer weights only) */
	int keep_float;         /* stays FP32 (dequantize, float, quantize at run time) */
	/* Number formats (qtool/numfmt.h). QT_FMT_INT (the default): integer
	 * weights of wbits, activations of abits, the integer kernels. Any other
	 * weight format (wbits = its element bits) gets its scales from
	 * lib/quant/wformat.c, its codes by round to nearest or GPTQ (the other
	 * code choosers keep round to nearest) and bias correction if asked,
	 * and is stored in that format; any other activation
	 * format fake-quantizes the layer's input (an ai.qtool FakeQuant node)
	 * and leaves the value itself float. Either makes the layer run in FP32
	 * on decoded weights ("decoded"): no integer kernel takes them. */
	enum qt_numfmt wfmt, afmt;
	enum qt_mx_rule mx_rule; /* MX shared exponents (weights and activations) */
};

struct qt_plan {
	int n;
	struct qt_layer_plan *layers; /* in topological order of their nodes */
	int default_abits;            /* activations no planned layer reads */
};

/*
 * What the weight stage did to one layer. Errors are measured on held-out
 * calibration samples (qt_quant_opts.holdout) as the layer's output error
 * relative to its output: sum_rows (w - q)^T H (w - q) / sum_rows w^T H w,
 * H = X^T X of the held-out inputs; -1 when not measured.
 */
struct qt_layer_report {
	int node;
	const char *name; /* the node's name, or its output's when it has none (graph-owned) */
	int wbits, abits;
	unsigned methods;
	double err_rtn;   /* round-to-nearest on the same grid */
	double err;       /* the codes chosen */
};

/* Progress of the weight stage: layer `done` of `total` (name) finished. */
typedef void (*qt_quant_progress_fn)(void *user, int done, int total, const char *layer, const char *what);

struct qt_quant_opts {
	int wbits;        /* 8, 4, 3 or 2 */
	int abits;        /* 8 or 4 */
	enum qt_granularity gran;
	int group_size;   /* with QT_GRAN_GROUP */
	int wfull;        /* full-range low-bit weight grids */
	unsigned methods; /* QT_METHOD_* for every layer */
	enum qt_numfmt wfmt, afmt; /* number formats (struct qt_layer_plan); 0: integers */
	enum qt_mx_rule mx_rule;
	const char *calib_method; /* NULL: the calibration file's default */
	const char *command_line; /* provenance */
	const char *data_spec;    /* provenance: how o->data was named (borrowed, may be NULL) */
	/* Shapes for the dry run that learns every value's dtype (borrowed, may
	 * be NULL): the calibration file's, overridden by --input-shape. */
	const struct qt_input_shapes *input_shapes;
	/* Per-layer edits applied in order after the defaults: "PATTERN=wXaY"
	 * (fnmatch glob on the node name, or its output's name) and keep-float patterns. */
	int n_overrides;
	const char *const *overrides;
	int n_keep_float;
	const char *const *keep_float;
	/* Calibration data for the methods that need it (QT_METHODS_DATA),
	 * borrowed; NULL when none. */
	struct qt_dataset *data;
	int batch;           /* samples per run for the data engine (default 32) */
	int fp32_inputs;     /* 1: methods see FP32 inputs; 0 (default): sequential */
	/* Sequential mode's target for GPTQ and AdaRound: 0 (default) the FP32
	 * model's layer output W x_fp, from a paired FP32 run of the same
	 * samples; 1 the layer's own FP32 weights on the quantized inputs, W x_q. */
	int no_fp32_target;
	/* GPTQ settings (0 = defaults: damp 0.01, block 128, act order on). */
	double gptq_damp;
	int gptq_block;
	int gptq_no_act_order;
	int gptq_rounds;     /* GPTQ (or AdaRound), then re-fit scales to its codes, this many times (0: 3) */
	int adaround_iters;  /* AdaRound's Adam steps per layer (0: 1000) */
	double sq_alpha;     /* SmoothQuant's migration strength in [0, 1]; < 0: searched per layer */
	/* When set, receives what the graph rewrites (QT_METHODS_REWRITE) did. */
	struct qt_rewrite_report *rewrite_out;
	qt_quant_progress_fn progress;
	void *progress_user;
	/* Hold out this fraction of the data's samples (rounded to whole
	 * batches) to measure each layer's error (0 = use every sample). */
	double holdout;
	/* When set, receives one report per quantized layer (malloc'd; the
	 * caller frees *report_out) and their count. */
	struct qt_layer_report **report_out;
	int *n_report_out;
};

/* Build the plan for a prepared graph (qt_quant_prepare) from o's defaults
 * and overrides. *out is owned by the caller (qt_plan_free). A pattern that
 * matches no layer is an error naming it. */
QT_API enum qt_status qt_plan_build(const struct qt_graph *g, const struct qt_quant_opts *o, struct qt_plan *out);
QT_API void qt_plan_free(struct qt_plan *p);
/* Apply "PATTERN=wXaY", "PATTERN=FORMAT" (a weight format of
 * qt_numfmt_parse: int4, fp4_e2m1, mxfp4, ...; the layer keeps its
 * activation bits), "PATTERN=FORMAT:a8" / ":a4" (and sets them) or
 * "PATTERN=float" to p;
 * error when nothing matches. */
QT_API enum qt_status qt_plan_override(const struct qt_graph *g, struct qt_plan *p, const char *spec);

/* Stage 1: fold BatchNormalization, fuse MatMul+Add and Relu/Clip into their
 * producers, and learn every value's dtype by a dry run. */
QT_API enum qt_status qt_quant_prepare(struct qt_graph *g, const struct qt_input_shapes *shapes);

/*
 * Stages 3-5 on a prepared graph: activation ranges from `calib`, each
 * planned layer's weights by its methods (data from o->data), then the int32
 * biases and requantization; plan (borrowed) says what is quantized how.
 */
QT_API enum qt_status qt_quantize_planned(struct qt_graph *g, const struct qt_calib_table *calib,
					  const struct qt_plan *plan, const struct qt_quant_opts *o);

/*
 * Quantize g in place (see the header comment): qt_quant_prepare, then the
 * graph rewrites o->methods asks for (QT_METHODS_REWRITE: CLE, SmoothQuant;
 * they need o->data, on which the rewritten graph's activation ranges are
 * measured again in place of calib's), then qt_plan_build, then
 * qt_quantize_planned. `calib` (borrowed) gives the
 * activation ranges; every activation must have statistics. On error the
 * graph may be partly rewritten and must be freed.
 */
QT_API enum qt_status qt_quantize_graph(struct qt_graph *g, const struct qt_calib_table *calib,
					const struct qt_quant_opts *o);

/* Parse a --method list ("gptq,bias-correction", "rtn", ...) into QT_METHOD_*
 * flags; 0 on success, else -1 with *bad_out pointing at the unknown name. */
QT_API int qt_parse_methods(const char *s, unsigned *methods_out, const char **bad_out);
/* The same, with method arguments into o: "smoothquant=A" (A in [0, 1],
 * or "auto": o->sq_alpha = -1; plain "smoothquant" is 0.5). Sets
 * o->methods. */
QT_API int qt_parse_method_list(const char *s, struct qt_quant_opts *o, const char **bad_out);
/* "gptq,bias-correction" for flags (static buffer). */
QT_API const char *qt_methods_str(unsigned methods);

/* 1 when plan entry p runs in FP32 on decoded weights (a weight or
 * activation format other than QT_FMT_INT). */
QT_API int qt_plan_decoded(const struct qt_layer_plan *p);

/* Parse "w8a8", "w4a8", "w3a8", "w2a8", "w8a4", ...; 0 on success. */
QT_API int qt_parse_bits(const char *s, int *wbits_out, int *abits_out);

/*
 * Dequantize a quantized weight/bias value's codes into float32 (owned by
 * *out). Used by the float simulation and by fallback ops.
 */
QT_API enum qt_status qt_dequantize_value(const struct qt_value *v, struct qt_tensor *out);

/*
 * Float simulation (fake quantization) of a quantized graph: replace its
 * quantized constants by their dequantized float values, in place. Then run
 * it with the FP32 executor and qt_fakequant_observer (user = the graph),
 * which rounds every quantized activation to its grid.
 */
QT_API enum qt_status qt_fakequant_prepare(struct qt_graph *g);
QT_API enum qt_status qt_fakequant_observer(void *graph, int value, struct qt_tensor *t);

/* Observer (user = the graph) that applies each node's fused Relu/Clip
 * (qt_node.act_fused) to its float output: with it the FP32 executor
 * computes the prepared graph's FP32 function. */
QT_API enum qt_status qt_fused_act_observer(void *graph, int value, struct qt_tensor *t);

/* Unpack element i of a packed code tensor (S8/I8, U8, S4, U4, S3, S2, U2, I32;
 * the minifloat dtypes of qtool/numfmt.h give their unsigned bits). */
QT_API int32_t qt_code_get(const struct qt_tensor *t, int64_t i);
/* Store code c (within the dtype's width) at element i of t, leaving the
 * other elements' bits as they are. Same dtypes as qt_code_get. */
QT_API void qt_code_put(struct qt_tensor *t, int64_t i, int32_t c);

/* ---- Cross-layer equalization and SmoothQuant (lib/quant/equalize.c,
 * lib/quant/smoothquant.c): float graph rewrites that keep the FP32
 * function and reshape per-channel ranges for quantization. ---- */

struct qt_equalize_opts {
	int max_iter;   /* sweeps over all pairs; 0: 20 */
	double tol;     /* stop when every |log s_i| of a sweep is below; 0: 1e-4 */
};

struct qt_equalize_stats {
	int pairs;          /* (first, second) layer pairs equalized */
	int skipped_clip;   /* pairs skipped: the first has a fused Clip(0, hi) with
			       finite hi (ReLU6), which a per-channel scale would change */
	int skipped_shape;  /* pairs skipped: shared weights, non-constant or
			       unsupported layouts, a path through an op that does not
			       commute with positive per-channel scaling */
	int iterations;     /* sweeps run */
	double last_max_log_s; /* max |log s_i| of the last sweep */
};

struct qt_dataset;

struct qt_smoothquant_opts {
	double alpha;   /* migration strength in [0, 1]; < 0: searched per activation */
	int wbits, abits; /* the bits the search's quantizer model uses (auto only) */
	int per_tensor; /* the search models per-tensor weight scales (else per channel) */
	int batch;      /* samples per run (0: 32) */
};

struct qt_smoothquant_stats {
	int layers;     /* linear layers whose input was smoothed */
	int unchanged;  /* auto: layers where no alpha beat leaving them alone */
	int skipped;    /* weighted layers whose input no producer can absorb 1/s for,
			   or that share it with a reader that is not a linear layer */
	double alpha_min, alpha_max; /* alphas applied (0, 0 when none) */
};

/*
 * SmoothQuant on a prepared graph (lib/quant/smoothquant.c states the rule,
 * which producers absorb 1/s and why others are skipped): per-channel
 * max |x| of each smoothed activation from ds (borrowed; rewound), then
 * s_j = max|x_j|^alpha / max|W_j|^(1 - alpha), x_j / s_j folded into its
 * producer and row j of every reader's weight multiplied by s_j. The FP32
 * function is kept (up to float rounding); activation ranges change, so a
 * calibration table of the old graph is stale. stats_out may be NULL.
 */
QT_API enum qt_status qt_pass_smoothquant(struct qt_graph *g, struct qt_dataset *ds,
					  const struct qt_smoothquant_opts *o, struct qt_smoothquant_stats *stats_out);

/* max |x_j| per channel j of the last axis (K channels) of value `value`
 * of a prepared graph over ds (fused activations applied): amax_out[K]. */
QT_API enum qt_status qt_channel_absmax(struct qt_graph *g, struct qt_dataset *ds, int batch, int value, int64_t K,
					double *amax_out);

/* What the consumer-aware activation range search did (lib/quant/actrange.c). */
struct qt_actrange_stats {
	int searched;            /* activations whose range was searched */
	int changed;             /* ... and moved off the calibrated range */
	float alpha_min, alpha_max; /* the multiples of the calibrated range chosen (changed ones) */
	double err_ratio_sum;    /* sum over changed ones of err(chosen) / err(calibrated) */
};

/* What the graph rewrites did (qt_quantize_graph), and the range search. */
struct qt_rewrite_report {
	int cle_done;                   /* equalization ran */
	struct qt_equalize_stats cle;   /* its statistics */
	int sq_done;                    /* SmoothQuant ran */
	struct qt_smoothquant_stats sq; /* its statistics */
	int64_t recalibrated;           /* samples the ranges were measured on again, 0: the file's */
	int ar_done;                    /* the activation range search ran */
	struct qt_actrange_stats ar;
};

/*
 * Cross-layer equalization on a prepared graph (qt_quant_prepare): for each
 * weighted layer A (Conv, Gemm, MatMul, MatMulBias) whose output reaches only
 * one weighted layer B through ops that commute with positive per-channel
 * scaling (Relu, MaxPool, AveragePool, GlobalAveragePool, Identity, Dropout,
 * Flatten(axis 1)), and whose fused activation, if any, is a plain Relu,
 * scale A's output channel i (weights and bias) by 1/s_i and B's input
 * channel i by s_i with s_i = sqrt(r1_i / r2_i), r = per-channel max |w|.
 * Pairs are swept in topological order until the scales settle, so a
 * depthwise conv between two layers is balanced against both. Weights are
 * edited in place. o and stats_out may be NULL. QT_E_NUMERIC for a non-finite
 * weight (the message names the node).
 */
QT_API enum qt_status qt_pass_equalize(struct qt_graph *g, const struct qt_equalize_opts *o,
				       struct qt_equalize_stats *stats_out);

/* Per-output-channel weight range spread of weighted node `node`: max_i r_i /
 * min_i r_i over output channels with r_i = max |w| of channel i (all-zero
 * channels ignored); -1 when the node has no constant float weight. */
QT_API double qt_weight_range_spread(const struct qt_graph *g, int node);

#endif
