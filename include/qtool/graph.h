/*
 * The graph IR shared by every stage: the ONNX loader builds it, graph passes
 * (BN folding, fusion) rewrite it, calibration observes it, quantization hangs
 * qt_qparams off its values, and both executors (FP32 and integer) run it.
 *
 * Ownership: a graph owns everything reachable from it. Strings, attribute
 * payloads and constant tensors live in the graph's arena; the value and node
 * arrays are growable so passes can add and remove nodes. The IR never points
 * into protobuf memory.
 */
#ifndef QTOOL_GRAPH_H
#define QTOOL_GRAPH_H

#include "qtool/numfmt.h"
#include "qtool/tensor.h"

struct qt_arena;

enum qt_attr_type {
	QT_ATTR_UNDEFINED = 0,
	QT_ATTR_FLOAT,
	QT_ATTR_INT,
	QT_ATTR_STRING,
	QT_ATTR_TENSOR,
	QT_ATTR_FLOATS,
	QT_ATTR_INTS,
	QT_ATTR_STRINGS,
	QT_ATTR_GRAPH, /* subgraphs are recorded but not supported by the runtimes */
};

struct qt_attr {
	const char *name;
	enum qt_attr_type type;
	float f;
	int64_t i;
	const char *s; /* NUL-terminated; s_len excludes the NUL (strings may hold bytes) */
	size_t s_len;
	struct qt_tensor *t;
	int n; /* element count of floats / ints / strings */
	float *floats;
	int64_t *ints;
	const char **strings;
};

/*
 * How a tensor is quantized: real = scale * (q - zero_point).
 * per tensor: count 1. per channel: one pair per index of `axis`.
 * per group: one pair per (channel along `axis`, group of `group_size`
 * consecutive elements along `group_axis`), channel-major.
 */
enum qt_qscheme { QT_QSCHEME_NONE = 0, QT_QSCHEME_TENSOR, QT_QSCHEME_CHANNEL, QT_QSCHEME_GROUP };

/*
 * How a .qmod stores the scales (docs/FORMAT.md, QPARAMS). QT_SCALE_ROW_U8
 * is for per-group weights only: each channel's largest group scale S as f32
 * and every group scale as S * (b + 1) / 256 with b a u8 (see
 * qt_wscale_group_decode); scale[] then holds exactly those decoded values.
 * QT_SCALE_E8M0 (MX formats) stores a byte b per group, scale 2^(b - 127);
 * QT_SCALE_NV_E4M3 (NVFP4) an f32 tensor scale T and an FP8 E4M3 byte b per
 * group, scale qt_nvfp4_scale(T, b). Both keep the bytes in scale_code[] and
 * the decoded values in scale[].
 */
enum qt_scale_enc { QT_SCALE_F32 = 0, QT_SCALE_ROW_U8 = 1, QT_SCALE_E8M0 = 2, QT_SCALE_NV_E4M3 = 3 };

struct qt_qparams {
	enum qt_dtype qtype; /* S8, U8, S4, S3, U4, S2, U2, FP8_* */
	enum qt_qscheme scheme;
	int axis;
	int group_axis;
	int group_size;
	int64_t count;
	float *scale;       /* count entries, finite and > 0 */
	int32_t *zero_point; /* count entries, within qtype's range */
	/* Signed weight codes: 0 the restricted symmetric range [-(2^(b-1) - 1),
	 * 2^(b-1) - 1], 1 the full two's-complement range [-2^(b-1), 2^(b-1) - 1]
	 * (qt_qparams_code_range). 0 for every other type. */
	int full_range;
	enum qt_scale_enc scale_enc;
	/* The number format of a weight's codes (qtool/numfmt.h). QT_FMT_INT (0):
	 * integer codes as above. Any other: qtype is the format's element dtype,
	 * zero points are 0 and real = scale * qt_numfmt_elem_decode(fmt, code);
	 * such weights have no integer kernel and are decoded to FP32. */
	enum qt_numfmt fmt;
	uint8_t *scale_code; /* QT_SCALE_E8M0, QT_SCALE_NV_E4M3: count scale bytes */
	float tensor_scale;  /* QT_SCALE_NV_E4M3: T */
};

/*
 * Integer requantization of a quantized node's int32 accumulators to its
 * output codes (rule in docs/FORMAT.md): per output channel (count = C) or per
 * tensor (count = 1), y = clamp(zo + ((acc * mult + 2^(shift-1)) >> shift), qmin, qmax).
 * qmin/qmax also carry a fused Relu/Clip.
 */
struct qt_requant {
	int count;
	int32_t *mult;  /* in [2^30, 2^31-1], or 0 for a zero real multiplier */
	int32_t *shift; /* in [1, 62] */
	int32_t qmin, qmax;
	/* Float simulation only (qt_fakequant_prepare), never stored: the real
	 * value of one accumulator unit per entry (s_in * S[c], divided by 2^15
	 * for grouped weights), or NULL. */
	double *sim_acc_unit;
	int sim_grouped;
};

/* A named value: a graph input, an initializer or a node output. */
struct qt_value {
	const char *name;
	enum qt_dtype dtype; /* QT_DTYPE_UNDEFINED when not declared */
	int rank;            /* -1 when unknown */
	int64_t dims[QT_MAX_RANK];           /* -1 for symbolic or unknown */
	const char *dim_params[QT_MAX_RANK]; /* symbolic names, or NULL */
	struct qt_tensor *init; /* constant data (initializer), or NULL */
	int producer;           /* node index, or -1 */
	int n_consumers;        /* node inputs referring to this value */
	int is_input, is_output;
	struct qt_qparams *q; /* NULL unless quantized */
};

struct qt_node {
	const char *name; /* never NULL; "" when the model gave none */
	const char *op_type;
	const char *domain; /* "" for the default ai.onnx domain */
	int n_inputs;
	int *inputs; /* value indices; -1 for an omitted optional input */
	int n_outputs;
	int *outputs; /* value indices; -1 for an omitted optional output */
	int n_attrs;
	struct qt_attr *attrs;
	struct qt_requant *rq; /* set on quantized weighted nodes (qt_is_weighted_op), else NULL */
	/* A Relu/Clip(0, hi) fused into this node by the quantizer: its output
	 * range is what applies it in the quantized model; the quantize stage's
	 * float runs clamp to [act_lo, act_hi] (never stored). */
	int act_fused;
	float act_lo, act_hi;
};

struct qt_graph {
	struct qt_arena *arena;
	const char *name;
	const char *path; /* file the graph was loaded from, or "" */
	int64_t ir_version;
	int opset;        /* version of the default (ai.onnx) domain */
	int n_opsets;
	const char **opset_domains;
	int64_t *opset_versions;
	int n_values, cap_values;
	struct qt_value *values;
	int n_nodes, cap_nodes;
	struct qt_node *nodes; /* topological order after qt_graph_finalize */
	int n_inputs;          /* graph inputs that are not initializers */
	int *inputs;
	int n_outputs;
	int *outputs;
	uint8_t sha256[32]; /* of the source file bytes */
	int *name_hash;     /* open-addressing index of values by name (internal) */
	int name_hash_cap;
	/* Provenance of a quantized graph (NULL for a plain ONNX graph). */
	const char *src_sha256_hex; /* the FP32 model it was quantized from */
	const char *calib_method;
	const char *qtool_version;
	const char *command_line;
	const char *quant_methods; /* methods and their settings, e.g. "gptq(...),bias-correction; sequential, 1000 samples of SPEC" */
};

/* Create an empty graph. *out is owned by the caller: free with qt_graph_free. */
QT_API enum qt_status qt_graph_new(struct qt_graph **out);
QT_API void qt_graph_free(struct qt_graph *g);

/*
 * Load an ONNX model file into a new graph and finalize it (topological
 * sort, consumer counts, validation of references). On failure *out is NULL
 * and the message names the file and the node or tensor at fault.
 */
QT_API enum qt_status qt_graph_load_onnx(const char *path, struct qt_graph **out);
/* The same from bytes; `dir` resolves external data (NULL refuses external data). */
QT_API enum qt_status qt_graph_load_onnx_mem(const void *buf, size_t len, const char *dir,
					     const char *label, struct qt_graph **out);

/* Copy a string into the graph's arena. NULL on out-of-memory. */
QT_API char *qt_graph_strdup(struct qt_graph *g, const char *s);
/* Allocate zeroed bytes from the graph's arena (lifetime = graph). */
QT_API void *qt_graph_alloc(struct qt_graph *g, size_t n);

/* Find a value by name; -1 if absent. */
QT_API int qt_graph_find_value(const struct qt_graph *g, const char *name);
/* Find or add a value by name; returns its index or -1 on out-of-memory. */
QT_API int qt_graph_value(struct qt_graph *g, const char *name);
/* Append a node (the strings are copied); returns its index or -1 on out-of-memory. */
QT_API int qt_graph_add_node(struct qt_graph *g, const char *op_type, const char *domain, const char *name);

/*
 * Recompute producers and consumer counts, sort nodes topologically and check
 * that every input is produced, an initializer or a graph input. Reports
 * cycles and dangling inputs naming the node. Call after any structural edit.
 */
QT_API enum qt_status qt_graph_finalize(struct qt_graph *g);

/*
 * Drop values nothing refers to (constants orphaned by passes, e.g. folded
 * BatchNormalization parameters) and renumber the rest; finalizes g.
 */
QT_API enum qt_status qt_graph_prune(struct qt_graph *g, int *n_removed_out);

/* Attribute look-up; NULL when the node has no such attribute. */
QT_API const struct qt_attr *qt_node_attr(const struct qt_node *n, const char *name);
QT_API int64_t qt_node_attr_int(const struct qt_node *n, const char *name, int64_t dflt);
QT_API float qt_node_attr_float(const struct qt_node *n, const char *name, float dflt);
QT_API const char *qt_node_attr_str(const struct qt_node *n, const char *name, const char *dflt);
/* ints attribute: returns element count (0 if absent) and sets *vals_out. */
QT_API int qt_node_attr_ints(const struct qt_node *n, const char *name, const int64_t **vals_out);
QT_API int qt_node_attr_floats(const struct qt_node *n, const char *name, const float **vals_out);

/*
 * Concrete input shapes for a dry run (quantize's dtype inference, inspect's
 * MACs): from the calibration file (the shapes calibration saw) or from
 * `--input-shape NAME=1,3,224,224`. A graph whose inputs have symbolic dims
 * is run at these shapes; nothing is made up except a batch of 1 for a
 * symbolic first dim.
 */
#define QT_MAX_INPUT_SHAPES 16
struct qt_input_shape {
	char name[256];
	int rank;
	int64_t dims[QT_MAX_RANK]; /* each >= 1 */
};
struct qt_input_shapes {
	int n;
	struct qt_input_shape s[QT_MAX_INPUT_SHAPES];
};

/*
 * Parse "NAME=D0,D1,..." (each D an integer >= 1; the '=' is found from the
 * right, so a name may hold '=') and add it to l, replacing an earlier shape
 * of the same name. QT_E_INVALID_ARG with a message saying what is wrong.
 */
QT_API enum qt_status qt_input_shapes_parse(struct qt_input_shapes *l, const char *arg);
/* Add or replace one shape (name copied, at most 255 bytes). QT_E_INVALID_ARG when full or bad. */
QT_API enum qt_status qt_input_shapes_set(struct qt_input_shapes *l, const char *name, int rank,
					  const int64_t *dims);

/* QT_E_INVALID_ARG naming the first shape in l whose name is not an input of g. */
QT_API enum qt_status qt_input_shapes_check(const struct qt_graph *g, const struct qt_input_shapes *l);

/*
 * Concrete dims of graph input i for a dry run: the declared shape with each
 * symbolic dim taken from `given` (may be NULL) or, for a symbolic first dim
 * only, 1. A given shape must match the declared rank and every static dim.
 * Returns the rank in *rank_out. QT_E_INVALID_ARG when a dim stays unknown
 * (the message says to pass --input-shape) or the given shape conflicts;
 * QT_E_UNSUPPORTED when the input declares no shape and none is given.
 */
QT_API enum qt_status qt_graph_dry_run_dims(const struct qt_graph *g, int i, const struct qt_input_shapes *given,
					    int64_t *dims_out, int *rank_out);

/* Node label for messages: `node "conv1" (Conv)`, or `node #3 (Conv)` when unnamed. */
QT_API const char *qt_node_label(const struct qt_graph *g, const struct qt_node *n, char *buf, size_t cap);

#endif
