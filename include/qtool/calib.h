/*
 * Calibration: activation statistics recorded over a dataset, and the range
 * methods that turn them into clipping ranges [lo, hi] for the quantizer.
 *
 * Pipeline: qt_calib_new() attaches to a graph; qt_calib_observer() is given
 * to qt_rt_set_observer() and sees every float32 activation (graph inputs
 * and node outputs) of every batch; qt_calib_finish() turns the running
 * statistics into a qt_calib_table (statistics plus the range of every
 * method); qt_calib_write() saves it as a JSON calibration file
 * (docs/CALIB_FORMAT.md) and qt_calib_read() loads and validates one.
 * qt_calib_range() gives the range the quantizer uses, recomputing it from
 * the stored histogram when the method or bit width differ from the stored
 * ones (so `quantize --calib-method` needs no new calibration pass).
 *
 * Memory: per tensor a fixed number of histogram bins (default 2048, 8 bytes
 * each) plus a few scalars, whatever the number of samples. The bin width is
 * a power of two; when the observed range grows the histogram re-bins by
 * merging whole bins (a power-of-two factor), so counts stay exact and the
 * statistics depend only on the data, not on the batch size or order.
 *
 * Numbers: everything here is offline, so it uses double internally and
 * float only at the boundary (ranges are handed out as float, the runtime's
 * activation type). Ranges always satisfy lo <= 0 <= hi (real 0 must be
 * exactly representable) and hi > lo.
 */
#ifndef QTOOL_CALIB_H
#define QTOOL_CALIB_H

#include "qtool/graph.h"
#include "qtool/rt.h"

#define QT_CALIB_DEFAULT_BINS 2048
#define QT_CALIB_MIN_BINS 16
#define QT_CALIB_MAX_BINS 65536
/* A file may hold at most this many bins over all tensors (bounds memory of the reader). */
#define QT_CALIB_MAX_TOTAL_BINS ((int64_t)1 << 24)
#define QT_CALIB_MAX_TENSORS 100000
#define QT_CALIB_MIN_RANGE_BITS 2
#define QT_CALIB_MAX_RANGE_BITS 16
#define QT_CALIB_DEFAULT_PERCENTILE 99.99

enum qt_calib_method {
	QT_CALIB_MINMAX = 0, /* [min, max] of everything observed */
	QT_CALIB_PERCENTILE, /* clip each side at the p-th percentile */
	QT_CALIB_ENTROPY,    /* per side, the threshold of least KL divergence (TensorRT) */
	QT_CALIB_MSE,        /* least expected squared clipping + rounding error */
	QT_CALIB_N_METHODS
};

/* "minmax", "percentile", "entropy", "mse"; "?" for an out-of-range value. */
QT_API const char *qt_calib_method_name(enum qt_calib_method m);
/* Parse a method name (exact, lower case). Returns 0 on success, -1 otherwise. */
QT_API int qt_calib_method_parse(const char *s, enum qt_calib_method *out);

/*
 * Statistics of one tensor: extremes, exact zeros and a histogram of the
 * non-zero values. The n_bins bins all have the same width w and 0 is a bin
 * edge: bins [0, zero_bin) hold negative values, bin zero_bin - 1 - j holds
 * [-(j+1)w, -jw), bins [zero_bin, n_bins) positive ones, bin zero_bin + j
 * holds [jw, (j+1)w). The histogram thus spans [-zero_bin*w, (n_bins-zero_bin)*w],
 * which contains [min, max]. While no non-zero value has been seen, width is
 * 0 and all counts are 0.
 */
struct qt_calib_hist {
	double min, max; /* observed extremes; 0 and 0 before anything is observed */
	uint64_t count;  /* elements observed, zeros included */
	uint64_t zeros;  /* elements exactly 0 (+0 or -0); not in counts */
	double width;    /* bin width w > 0, or 0 (see above) */
	int n_bins;      /* QT_CALIB_MIN_BINS .. QT_CALIB_MAX_BINS */
	int zero_bin;    /* 0 .. n_bins */
	uint64_t *counts; /* n_bins entries */
};

/*
 * Check that h (borrowed) is consistent: n_bins and zero_bin in range; min <=
 * max, both finite; width finite and >= 0; with width 0, no counts and min =
 * max = 0; with width > 0, [min, max] inside the histogram span (to a
 * relative 1e-9); count = zeros + sum(counts) without overflow. Returns
 * QT_E_FORMAT with "<label>: ..." otherwise (label borrowed).
 */
QT_API enum qt_status qt_calib_hist_check(const struct qt_calib_hist *h, const char *label);

/*
 * Clipping range of `h` (borrowed) by method m for `bits`-bit asymmetric
 * quantization (2 .. 16; levels = 2^bits - 1), with `percentile` (50 .. 100)
 * for QT_CALIB_PERCENTILE. Writes lo <= 0 <= hi, hi > lo: a tensor with no
 * non-zero value gets [0, 1]; a method whose clip collapses to zero width
 * falls back to minmax. QT_E_INVALID_ARG for bad bits/percentile/method or an
 * inconsistent histogram; QT_E_NOMEM.
 */
QT_API enum qt_status qt_calib_hist_range(const struct qt_calib_hist *h, enum qt_calib_method m, int bits,
					  double percentile, float *lo_out, float *hi_out);

/* Options of a calibration pass. Zeroed fields take the defaults. */
struct qt_calib_opts {
	int bins; /* histogram bins per tensor; 0 = QT_CALIB_DEFAULT_BINS */
};

/* Running statistics of one calibration pass (opaque). */
struct qt_calib;

/*
 * Start a calibration pass over g (retained: must outlive the object). The
 * observed tensors are the graph inputs and node outputs that are not
 * initializers and not declared with a non-float32 dtype; those that turn out
 * not to be float32 at run time are ignored. o may be NULL (defaults).
 * *out is owned by the caller: free with qt_calib_free. QT_E_INVALID_ARG for
 * bins outside [QT_CALIB_MIN_BINS, QT_CALIB_MAX_BINS], QT_E_NOMEM.
 */
QT_API enum qt_status qt_calib_new(const struct qt_graph *g, const struct qt_calib_opts *o, struct qt_calib **out);

/*
 * The qt_rt_observer hook: pass `calib` as the user pointer. Adds the
 * elements of t (borrowed, not modified) to the statistics of value `value`.
 * Values that are not observed are ignored. A NaN or Inf element is
 * QT_E_NUMERIC naming the tensor and the element.
 */
QT_API enum qt_status qt_calib_observer(void *calib, int value, struct qt_tensor *t);

/* Statistics of value `value` so far (borrowed, valid until the next observation);
 * NULL when the value is not observed or nothing float32 was seen for it. */
QT_API const struct qt_calib_hist *qt_calib_stats(const struct qt_calib *c, int value);

/* Free c and its histograms (tables made from it stay valid). Safe on NULL. */
QT_API void qt_calib_free(struct qt_calib *c);

/* One tensor of a calibration table. */
struct qt_calib_entry {
	const char *name;
	struct qt_calib_hist hist;
	int has_range[QT_CALIB_N_METHODS]; /* ranges stored for the table's bits/percentile */
	float range[QT_CALIB_N_METHODS][2];
};

/*
 * A calibration file in memory: what qt_calib_finish builds and qt_calib_read
 * loads. Everything lives in `arena`; free with qt_calib_table_free.
 */
struct qt_calib_table {
	struct qt_arena *arena;
	const char *path;        /* file it was read from or last written to, "" if none */
	char model_sha256[65];   /* lower-case hex of the FP32 model file */
	const char *model;       /* model path as given when calibrating */
	const char *dataset;     /* dataset spec as given when calibrating */
	int64_t samples;         /* samples run through the model */
	enum qt_calib_method default_method;
	int bits;                /* bit width the stored ranges were computed for */
	double percentile;       /* parameter of the stored percentile ranges */
	int n_tensors;
	struct qt_calib_entry *tensors;
	/* The shape of the first batch seen per graph input, with a symbolic
	 * batch dim recorded as 1: the dry-run shapes of quantize and inspect
	 * (file member "input_shapes"; absent in older files: n = 0). */
	struct qt_input_shapes input_shapes;
};

/* What qt_calib_finish records besides the statistics. Strings are borrowed (copied). */
struct qt_calib_meta {
	const char *model;   /* may be NULL: "" */
	const char *dataset; /* may be NULL: "" */
	int64_t samples;
	enum qt_calib_method default_method;
	int bits;          /* 0 = 8 */
	double percentile; /* 0 = QT_CALIB_DEFAULT_PERCENTILE */
};

/*
 * Build a table from the statistics of c (borrowed; c stays usable) and meta
 * (borrowed), computing every method's range at meta's bits and percentile.
 * Tensors appear in graph value order; values never observed as float32 are
 * left out. The model hash is c's graph's sha256. *out is owned by the
 * caller. QT_E_INVALID_ARG for bad bits/percentile/method, QT_E_NOMEM.
 */
QT_API enum qt_status qt_calib_finish(const struct qt_calib *c, const struct qt_calib_meta *meta,
				      struct qt_calib_table **out);

/* Free t and everything in it. Safe on NULL. */
QT_API void qt_calib_table_free(struct qt_calib_table *t);

/* Entry of tensor `name` (borrowed), or NULL. */
QT_API const struct qt_calib_entry *qt_calib_find(const struct qt_calib_table *t, const char *name);

/*
 * Write t (borrowed) as a calibration file (JSON, docs/CALIB_FORMAT.md) at
 * path. The bytes go to a temporary file beside path that is flushed and
 * renamed over it, so path never holds a partial file; mode 0644. QT_E_IO
 * naming the file.
 */
QT_API enum qt_status qt_calib_write(const struct qt_calib_table *t, const char *path);

/* The same into a malloc'd NUL-terminated string (*json_out, caller frees). */
QT_API enum qt_status qt_calib_to_json(const struct qt_calib_table *t, char **json_out);

/*
 * Read and validate the calibration file at path (borrowed). With g
 * (borrowed; may be NULL) the file must have been made for g's model bytes
 * (g->sha256) and every tensor must exist in g. Errors name the file:
 * QT_E_IO (cannot read), QT_E_FORMAT (malformed, or made for another model),
 * QT_E_NOMEM. *out is owned by the caller; NULL on error.
 */
QT_API enum qt_status qt_calib_read(const char *path, const struct qt_graph *g, struct qt_calib_table **out);

/* The same from len bytes at buf (borrowed); label names the source in messages. */
QT_API enum qt_status qt_calib_read_mem(const void *buf, size_t len, const char *label, const struct qt_graph *g,
					struct qt_calib_table **out);

/*
 * Range of `tensor` for the quantizer. method: NULL = the table's default,
 * else a method name; bits <= 0 = the table's bits. The stored range is used
 * when method and bits match what was stored; otherwise the range is
 * recomputed from the histogram (percentile: the table's). QT_E_FORMAT
 * `calibration file X has no statistics for tensor "name"` when missing,
 * QT_E_INVALID_ARG for an unknown method or bits outside 2..16.
 */
QT_API enum qt_status qt_calib_range(const struct qt_calib_table *t, const char *tensor, const char *method, int bits,
				     float *lo_out, float *hi_out);

/* The same with an explicit percentile (<= 0: the table's). */
QT_API enum qt_status qt_calib_range_p(const struct qt_calib_table *t, const char *tensor, const char *method,
				       int bits, double percentile, float *lo_out, float *hi_out);

struct qt_dataset;

/*
 * Run every sample of ds (rewound first; borrowed) through g (borrowed) in
 * batches of `batch`, handing every value to fn (the qt_rt_observer hook;
 * it may modify the tensor, e.g. apply fused activations). *done_out (may be
 * NULL) gets the samples run. g must have one input. Errors name the samples.
 */
QT_API enum qt_status qt_dataset_run(const struct qt_graph *g, struct qt_dataset *ds, int batch, qt_rt_observer fn,
				     void *user, int64_t *done_out);

/*
 * One calibration pass as a library call: run every sample of ds (rewound
 * first; borrowed) through g (borrowed) in batches of `batch`, each value
 * passed to `pre` (may be NULL; e.g. qt_fused_act_observer, which applies a
 * prepared graph's fused activations) and then recorded, and build the
 * table with meta (its `samples` is set to the count run). *out is owned by
 * the caller. g must have one input. Errors name the samples.
 */
QT_API enum qt_status qt_calib_run(const struct qt_graph *g, struct qt_dataset *ds, int batch, qt_rt_observer pre,
				   void *pre_user, const struct qt_calib_opts *copt, const struct qt_calib_meta *meta,
				   struct qt_calib_table **out);

#endif
