/*
 * .qmod: qtool's quantized model file (specification: docs/FORMAT.md).
 * The writer and the reader follow that document; the reader validates every
 * offset, length, count, dtype, range and CRC before use.
 */
#ifndef QTOOL_QMOD_H
#define QTOOL_QMOD_H

#include "qtool/graph.h"

/* The newest version this qtool reads and writes. It writes version 3 (the
 * same bytes as before) unless the graph needs version 4: a weight in a
 * number format of qtool/numfmt.h, or an ai.qtool FakeQuant node. */
#define QT_QMOD_VERSION 4

/* Write g (a quantized graph) to path: temporary file + rename; deterministic. */
QT_API enum qt_status qt_qmod_write(const struct qt_graph *g, const char *path);
/* The version qt_qmod_write uses for g: 4 when g needs it, else 3. */
QT_API uint32_t qt_qmod_version_needed(const struct qt_graph *g);
/* Serialize to a malloc'd buffer (*buf_out owned by the caller). */
QT_API enum qt_status qt_qmod_serialize(const struct qt_graph *g, uint8_t **buf_out, size_t *len_out);
/* Read and validate; *out is a new graph owned by the caller. */
QT_API enum qt_status qt_qmod_read(const char *path, struct qt_graph **out);
QT_API enum qt_status qt_qmod_read_mem(const void *buf, size_t len, const char *label, struct qt_graph **out);

struct qt_qmod_section {
	const char *name; /* "DATA", ... (static) */
	uint64_t offset, length;
};
/* List the sections of a .qmod held in memory (validated by qt_qmod_read_mem
 * first). Returns how many were written to out (at most cap). */
QT_API int qt_qmod_sections(const void *buf, size_t len, struct qt_qmod_section *out, int cap);

struct qt_qmod_summary {
	int quantized_nodes;  /* nodes with integer weights */
	int float_nodes;      /* nodes without an integer kernel (dequantize, FP32, quantize) */
	int64_t weight_bytes; /* bytes of every constant payload */
	int64_t weight_bits;  /* sum of constant elements x their bits */
	int64_t qparam_bytes; /* scales, zero points, multipliers, shifts as stored */
};
/* Bytes a .qmod stores for q's scales and zero points (DATA payloads,
 * without the QPARAMS record or alignment): f32 scales, or for two-level
 * group scales one f32 per channel plus one byte per group; zero points
 * only when one is not 0. `channels`: the channel count of the tensor q
 * describes (used only by two-level scales). */
QT_API int64_t qt_qmod_qparams_bytes(const struct qt_qparams *q, int64_t channels);
/* Facts about a quantized graph for inspect and the size bound. */
QT_API void qt_qmod_summarize(const struct qt_graph *g, struct qt_qmod_summary *s);
/*
 * Time the integer runtime on quantized graph g (borrowed; one input) fed x
 * (borrowed, a batch of `samples`): `reps` runs; for each of nodes[0..n) the
 * fastest run's time of that node in nanoseconds per sample into ns_out.
 */
QT_API enum qt_status qt_qrt_time_nodes(const struct qt_graph *g, const struct qt_tensor *x, int64_t samples, int reps,
					const int *nodes, int n, int64_t *ns_out);
/* 1 if op_type has an integer kernel in the integer runtime given its operands. */
QT_API int qt_qrt_node_is_integer(const struct qt_graph *g, int node);
/*
 * Why node `node` of quantized graph g runs as dequantize -> FP32 -> quantize
 * (lib/rt/explain.c): a weighted op's qt_quant_skip_reason ("weight not
 * constant", "weight shared with another node", "bias not foldable", ...),
 * "no integer kernel for OP ...", or non-float outputs. NULL when it runs on
 * integers; otherwise buf (cap bytes), NUL-terminated.
 */
QT_API const char *qt_node_float_reason(const struct qt_graph *g, int node, char *buf, size_t cap);

#endif
