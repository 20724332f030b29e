/*
 * A runnable model, whatever its file: an FP32 ONNX model (reference
 * executor) or a quantized .qmod (integer executor). Evaluation and
 * benchmarks use this so they treat both alike.
 */
#ifndef QTOOL_MODEL_H
#define QTOOL_MODEL_H

#include "qtool/graph.h"
#include "qtool/rt.h"

struct qt_model;

enum qt_model_kind {
	QT_MODEL_ONNX,     /* FP32 reference executor */
	QT_MODEL_QMOD,     /* integer executor */
	QT_MODEL_QMOD_SIM, /* a .qmod run as its float simulation (fake quantization) */
};

/* Open by content (the .qmod magic, else ONNX). *out owned by the caller.
 * Refuses a model without inputs or outputs. */
QT_API enum qt_status qt_model_open(const char *path, struct qt_model **out);
/* Open a .qmod as its float simulation instead (QT_MODEL_QMOD_SIM). */
QT_API enum qt_status qt_model_open_sim(const char *path, struct qt_model **out);
/*
 * Open an FP32 ONNX model as the quantize stage sees it: prepared
 * (qt_quant_prepare: BN folded, Relu/Clip fused into their producers) and
 * run with the fused activations applied. Its values carry the names a
 * .qmod quantized from it gives them, so the two can be compared layer by
 * layer. Kind QT_MODEL_ONNX.
 */
QT_API enum qt_status qt_model_open_prepared(const char *path, struct qt_model **out);
/* Scale and zero point of the first output when it is quantized; 0 if not. */
QT_API int qt_model_output_qparams(const struct qt_model *m, float *scale_out, int32_t *zp_out);
QT_API void qt_model_free(struct qt_model *m);

QT_API enum qt_model_kind qt_model_kind(const struct qt_model *m);
/* The model's graph (borrowed; lives as long as m). */
QT_API const struct qt_graph *qt_model_graph(const struct qt_model *m);
/* Size of the model file in bytes. */
QT_API uint64_t qt_model_file_bytes(const struct qt_model *m);
/* Lower-case hex sha256 of the model file (65 bytes with NUL). */
QT_API const char *qt_model_sha256_hex(const struct qt_model *m);

/*
 * Run on one batch: the model's single input gets `x` (borrowed), its first
 * output is written to *y_out (owned by the caller; float32). A model with
 * several inputs is refused (QT_E_UNSUPPORTED).
 */
QT_API enum qt_status qt_model_run(struct qt_model *m, const struct qt_tensor *x, struct qt_tensor *y_out);
/*
 * Run once on every input: `inputs` holds g->n_inputs tensors in graph-input
 * order (borrowed); `outputs` receives g->n_outputs tensors owned by the
 * caller (qt_tensor_free). A .qmod's outputs are dequantized to float32.
 */
QT_API enum qt_status qt_model_run_all(struct qt_model *m, const struct qt_tensor *inputs, struct qt_tensor *outputs);

/* Keep every intermediate value of the next runs (float runtimes: ONNX,
 * simulated .qmod); QT_E_UNSUPPORTED for the integer runtime. */
QT_API enum qt_status qt_model_keep_values(struct qt_model *m);
/* Borrowed view of value v (an index into qt_model_graph(m)) after a run
 * with qt_model_keep_values; NULL when not computed. */
QT_API const struct qt_tensor *qt_model_value(const struct qt_model *m, int v);

/* Per-op statistics of the float runtime (ONNX, simulated .qmod); NULL for
 * the integer runtime. Borrowed; lives as long as m. */
QT_API const struct qt_rt_stats *qt_model_stats(const struct qt_model *m);

/* What executes m: "fp32 (OpenBLAS)" for ONNX models and the float
 * simulation, else the integer kernels' instruction set ("avx512vnni",
 * "avx2", "ref"; see QT_ISA). Static string. */
QT_API const char *qt_model_engine(const struct qt_model *m);

/* Lower-case hex of 32 bytes into out (65 bytes). */
QT_API void qt_hex32(const uint8_t *bytes, char *out);

#endif
