/*
 * Datasets: one spec string, used by every command (calibrate, evaluate,
 * quantize), so calibration and evaluation read samples exactly as the model
 * was trained. Batches are streamed: memory is bounded by the batch size,
 * never by the dataset.
 *
 * Spec kinds:
 *
 *   fashion-mnist:train   fashion-mnist:test
 *       The installed Fashion-MNIST files
 *       (/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz),
 *       with the bundled models' preprocessing, computed in float32 in this
 *       order:  x = ((float)u / 255.0f - 0.2860f) / 0.3530f
 *       Samples are [1,28,28] (NCHW; [28,28,1] when opts->layout is NHWC).
 *
 *   idx:IMAGES[,LABELS]
 *       IDX files (plain or gzip), see qtool/idx.h. Images of rank 3
 *       [N,H,W] are grayscale and get a channel dim ([1,H,W] or [H,W,1]);
 *       rank 4 [N,H,W,C] is stored channels-last and is transposed to
 *       opts->layout; rank 2 [N,D] gives flat samples [D]. Labels are a rank
 *       1 IDX [N]. Preprocessing comes from opts->preproc (NULL: raw values).
 *       Paths may not contain ',' (use a JSON spec for those).
 *
 *   npy:DIR
 *       A folder holding one of two layouts (holding both is an error):
 *       - x.npy with every sample stacked along dim 0, [N, ...], and
 *         optionally y.npy with the labels, [N] or [N,1];
 *       - one file per sample named by its index in decimal, NNNN.npy
 *         (0000.npy, 0001.npy, ...; any zero padding, numbered 0..N-1 with
 *         no gap), each holding one sample, all of the same dtype and
 *         shape, and optionally labels.npy [N].
 *       DIR may also name a single .npy file (used as x.npy, no labels).
 *       Samples keep their stored shape (no channel dim is added) and are
 *       taken to be in opts->layout. Any numeric dtype; float samples must
 *       be finite. Labels are any integer dtype, >= 0. A per-sample file of
 *       rank 4 whose first dim is 1 holds a batch of one ([1,C,H,W]): the
 *       sample is the [C,H,W] inside.
 *
 *   pb:DIR
 *       A folder of ONNX TensorProto files (qtool/onnx.h), one sample per
 *       file, read as the per-sample .npy files above (same numbering,
 *       dtypes, batch dim of 1, shapes and checks): 0000.pb, 0001.pb, ...
 *       and optionally labels.pb, an integer TensorProto [N] or [N,1] (held
 *       in memory whole: a TensorProto cannot be read in part). Or the ONNX
 *       backend-test layout: DIR/test_data_set_N/input_0.pb for N = 0..
 *       (other inputs and output_N.pb are not read; labels.pb may sit in
 *       DIR). Holding both layouts is an error. There is no stacked form.
 *
 *   PATH.json
 *       A JSON file (relative paths inside are resolved against its folder):
 *       { "format": "idx" | "npy" | "pb",   required
 *         "images": "PATH",                  required; for npy a .npy file or a folder as above,
 *                                            for pb a folder as above
 *         "labels": "PATH",                  optional (not with a folder)
 *         "scale":  255,                     optional: raw values are DIVIDED by scale
 *         "mean":   [0.286],                 optional: 1 value, or 1 per channel
 *         "std":    [0.353],                 optional: 1 value, or 1 per channel, > 0
 *         "layout": "NCHW" | "NHWC",         optional: layout of the produced samples
 *         "source_layout": "NCHW" | "NHWC",  optional (npy, pb): layout of the stored samples
 *         "dtype":  "float32" }              optional: the only output dtype
 *       Unknown keys are an error (they are usually typos).
 *
 * Preprocessing of every element, in float32, c being its channel (channels
 * are dim 0 of a [C,H,W] sample or dim 2 of [H,W,C]; other sample shapes
 * have one channel):  x = (float)raw;  x = x / scale;  x = x - mean[c];
 * x = x / std[c]  (each step skipped when its value is not given). A result
 * that is not finite is an error.
 */
#ifndef QTOOL_DATASET_H
#define QTOOL_DATASET_H

#include "qtool/tensor.h"

#define QT_DATASET_MAX_CHANNELS 16

enum qt_data_layout { QT_DATA_NCHW = 0, QT_DATA_NHWC = 1 };

struct qt_preproc {
	float scale; /* raw values are divided by scale; 0 = not given (no division) */
	int n_mean;  /* 0 (not given), 1 (all channels) or the channel count */
	float mean[QT_DATASET_MAX_CHANNELS];
	int n_std; /* 0 (not given), 1 or the channel count; values > 0 */
	float std[QT_DATASET_MAX_CHANNELS];
};

/* Options; a zero-initialized struct (or NULL) means all samples, raw, NCHW, no shape check. */
struct qt_dataset_opts {
	int64_t offset; /* skip this many samples (>= 0) */
	int64_t limit;  /* then take at most this many; 0 = all */
	/* Preprocessing for idx:/npy:/pb: specs (borrowed, copied). NULL: raw values.
	 * Must be NULL for fashion-mnist: and JSON specs, which carry their own. */
	const struct qt_preproc *preproc;
	/* Layout of produced image samples. A JSON "layout" key takes precedence
	 * (an explicit NHWC here that contradicts it is an error). */
	enum qt_data_layout layout;
	/* The model input the samples feed, without the batch dim (borrowed; only
	 * used during qt_dataset_open). input_dims NULL skips the check. Dims < 0
	 * are symbolic and match anything. A sample of the same element count
	 * whose shape differs only by size-1 dims (e.g. [28,28] vs [1,28,28]), or
	 * a rank-1 input ([784]), is reshaped to the input's shape. */
	const char *input_name;
	int input_rank;
	const int64_t *input_dims;
};

struct qt_dataset;

/*
 * Open a dataset. spec and opts are borrowed (copied). *out is owned by the
 * caller: close with qt_dataset_close. On error *out is NULL and the message
 * starts with the spec (the JSON path for a JSON spec):
 *   "idx:a.gz,b.gz: cannot open a.gz: No such file or directory".
 * Errors: QT_E_INVALID_ARG (unknown spec kind, bad options, offset beyond the
 * end, 0 samples after offset/limit, samples that do not fit the model
 * input), QT_E_IO (missing or unreadable file), QT_E_FORMAT (malformed files,
 * label count != sample count, empty files), QT_E_UNSUPPORTED, QT_E_NOMEM.
 */
QT_API enum qt_status qt_dataset_open(const char *spec, const struct qt_dataset_opts *opts,
				      struct qt_dataset **out);

/* Number of samples after offset and limit (> 0). */
QT_API int64_t qt_dataset_count(const struct qt_dataset *ds);

/* Whether the dataset has labels (qt_dataset_next fills labels_out only then). */
QT_API int qt_dataset_has_labels(const struct qt_dataset *ds);

/* Shape of one produced sample (without the batch dim): returns the rank and
 * fills dims_out[0..rank). */
QT_API int qt_dataset_sample_shape(const struct qt_dataset *ds, int64_t dims_out[QT_MAX_RANK]);

/*
 * Read the next batch of up to `batch` (> 0) samples. x_out becomes an owned
 * float32 tensor [n, sample...] (its previous owned buffer is freed; the
 * caller frees the last one with qt_tensor_free). labels_out (may be NULL;
 * ignored when the dataset has no labels) receives n labels and must hold
 * `batch` entries. *n_out is the number of samples read: 0 at the end, in
 * which case x_out is left unchanged. Errors (truncated files, NaN/Inf,
 * inconsistent per-sample files, negative labels) leave the position
 * unchanged; the message starts with the spec.
 */
QT_API enum qt_status qt_dataset_next(struct qt_dataset *ds, int batch, struct qt_tensor *x_out,
				      int64_t *labels_out, int *n_out);

/* Go back to the first sample (after offset). */
QT_API void qt_dataset_reset(struct qt_dataset *ds);

/*
 * Canonical description for reports, e.g.
 *   "fashion-mnist:test images=/usr/.../t10k-images-idx3-ubyte.gz labels=/usr/.../t10k-labels-idx1-ubyte.gz
 *    stored=uint8[28,28] scale=255 mean=[0.286] std=[0.353] layout=NCHW dtype=float32 sample=[1,28,28]
 *    offset=0 count=10000 total=10000"
 * (one line). Borrowed: valid until qt_dataset_close.
 */
QT_API const char *qt_dataset_describe(const struct qt_dataset *ds);

/* Close files and free ds. Safe on NULL. */
QT_API void qt_dataset_close(struct qt_dataset *ds);

#endif
