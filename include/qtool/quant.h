/*
 * Quantization: graph preparation passes, quantization parameters, and the
 * quantize stage that turns an FP32 graph plus calibration ranges into a
 * quantized graph (the in-memory form of a .qmod).
 *
 * The quantized graph is the prepared FP32 graph (BatchNormalization folded,
 * Relu/Clip(0,..) fused into their producer's output range) where:
 *  - every float32 activation has per-tensor asymmetric qparams (U8 or U4:
 *    codes in [0, 2^bits - 1], real = scale * (q - zero_point));
 *  - the weight of each quantized weighted op (qt_is_weighted_op) is replaced by symmetric
 *    codes (S8/S4/S2, zero point 0, per channel of the output axis, per
 *    tensor, or per group along the input axis), stored packed as the value's
 *    init tensor with dtype S8 (=I8), S4 or S2;
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

/* Asymmetric per-tensor parameters for [lo, hi] (widened to include 0). */
QT_API enum qt_status qt_qparams_asym(float lo, float hi, int bits, float *scale_out, int32_t *zp_out);
/* Quantize one float with (scale, zp) into [qmin, qmax]: nearbyint(x /
 * scale) + zp, ties to even, clamped; NaN gives qmin. */
QT_API int32_t qt_quantize_one(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax);
/* The same for n floats into uint8 codes (0 <= qmin <= qmax <= 255), vectorizable. */
QT_API void qt_quantize_u8(const float *x, size_t n, float scale, int32_t zp, int32_t qmin, int32_t qmax,
			   uint8_t *out);

struct qt_calib_table;

enum qt_granularity { QT_GRAN_CHANNEL = 0, QT_GRAN_TENSOR, QT_GRAN_GROUP };

struct qt_quant_opts {
	int wbits;        /* 8, 4 or 2 */
	int abits;        /* 8 or 4 */
	enum qt_granularity gran;
	int group_size;   /* with QT_GRAN_GROUP */
	const char *calib_method; /* NULL: the calibration file's default */
	const char *command_line; /* provenance */
	/* Shapes for the dry run that learns every value's dtype (borrowed, may
	 * be NULL): the calibration file's, overridden by --input-shape. */
	const struct qt_input_shapes *input_shapes;
};

/*
 * Quantize g in place (see the header comment). `calib` (borrowed) gives the
 * activation ranges; every activation must have statistics. On error the
 * graph may be partly rewritten and must be freed.
 */
QT_API enum qt_status qt_quantize_graph(struct qt_graph *g, const struct qt_calib_table *calib,
					const struct qt_quant_opts *o);

/* Parse "w8a8", "w4a8", "w2a8", "w8a4", ...; 0 on success. */
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

/* Unpack element i of a packed code tensor (S8/I8, U8, S4, U4, S2, U2, I32). */
QT_API int32_t qt_code_get(const struct qt_tensor *t, int64_t i);

#endif
