/*
 * Serialized ONNX TensorProto files: the input_N.pb / output_N.pb files of the
 * ONNX backend test data, and reference outputs qtool writes for comparison.
 * (Whole models are loaded with qt_graph_load_onnx, in qtool/graph.h.)
 *
 * The reader follows the same rules as model initializers: dtypes float32,
 * float16, float64, int64, int32, int16, int8, uint8, uint16, uint32, uint64
 * and bool; raw_data or the typed fields; rank at most QT_MAX_RANK; element
 * counts checked exactly against the shape. String tensors are refused.
 */
#ifndef QTOOL_ONNX_H
#define QTOOL_ONNX_H

#include "qtool/tensor.h"

/*
 * Read the TensorProto file at `path` into *out, which receives an owned
 * buffer (free with qt_tensor_free). out's previous contents are overwritten,
 * not freed; on failure *out is left empty, so qt_tensor_free is always safe.
 * name_out (may be NULL when name_cap is 0) receives the tensor's name,
 * possibly "" and truncated to name_cap - 1 bytes. External data is resolved
 * relative to the file's folder, with the same restrictions as for models.
 * Errors (QT_E_IO, QT_E_FORMAT, QT_E_UNSUPPORTED, QT_E_NOMEM) name the file.
 */
QT_API enum qt_status qt_tensor_read_pb(const char *path, struct qt_tensor *out, char *name_out, size_t name_cap);

/*
 * The same from len bytes at buf (borrowed); `label` names the source in
 * messages. External data is refused.
 */
QT_API enum qt_status qt_tensor_read_pb_mem(const void *buf, size_t len, const char *label, struct qt_tensor *out,
					    char *name_out, size_t name_cap);

/*
 * Write t (borrowed) as a TensorProto with raw_data (little-endian) and the
 * given name (NULL for none). The file is written to path.tmp.XXXXXX in the
 * same folder and renamed over `path`, so readers never see a partial file.
 * QT_E_UNSUPPORTED for dtypes ONNX has no TensorProto type for (packed
 * quantized types, strings); QT_E_IO naming the file on write failure.
 */
QT_API enum qt_status qt_tensor_write_pb(const char *path, const struct qt_tensor *t, const char *name);

struct qt_graph;

/*
 * Export a quantized graph g (borrowed; what qt_qmod_read returns) as a
 * standard ONNX model in QDQ form: integer weight codes (int8, or int4 at
 * opset 21) and int32 biases feeding DequantizeLinear, QuantizeLinear then
 * DequantizeLinear (uint8 or uint4, per tensor) after every quantized
 * activation, per-axis weight scales (blocked along the input axis for
 * grouped weights, opset 21), ai.qtool MatMulBias as MatMul + Add. The
 * mapping, and where ONNX Runtime's float requantization can differ from
 * qtool's integer one, is in docs/EXPORT.md.
 *
 * *buf_out receives the serialized ModelProto (malloc'd, owned by the
 * caller), *len_out its size, *opset_out (may be NULL) the ai.onnx opset it
 * declares: the graph's own, at least 13, and 21 when int4, uint4 or blocked
 * scales need it. QT_E_UNSUPPORTED names the node and what ONNX cannot
 * express (2-bit or FP8 weights, groups that do not fit one axis);
 * QT_E_INVALID_ARG when g has no quantization parameters.
 */
QT_API enum qt_status qt_onnx_export_qdq(const struct qt_graph *g, uint8_t **buf_out, size_t *len_out,
					 int *opset_out);

#endif
