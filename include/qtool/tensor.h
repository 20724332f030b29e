/*
 * Concrete tensors: a dtype, a shape and a buffer. Used by the executors for
 * activations, by the loaders for constants and by the dataset readers for
 * batches. Shapes are row-major (C order).
 */
#ifndef QTOOL_TENSOR_H
#define QTOOL_TENSOR_H

#include "qtool/qtool.h"

#define QT_MAX_RANK 8

struct qt_tensor {
	enum qt_dtype dtype;
	int rank;
	int64_t dims[QT_MAX_RANK];
	void *data;    /* owned when `owned` is set, otherwise borrowed */
	size_t nbytes; /* bytes of data (qt_dtype_nbytes(dtype, numel)) */
	int owned;
};

/* Number of elements (1 for rank 0). */
QT_API int64_t qt_tensor_numel(const struct qt_tensor *t);
/*
 * Give t the dtype and shape and a zero-filled owned buffer (frees any owned
 * buffer t had). Returns QT_E_NOMEM when the size overflows or exceeds
 * QT_TENSOR_MAX_BYTES, QT_E_INVALID_ARG on a negative dim or rank > QT_MAX_RANK.
 */
QT_API enum qt_status qt_tensor_alloc(struct qt_tensor *t, enum qt_dtype dt, int rank, const int64_t *dims);
/* Free an owned buffer and reset t to empty. Safe on an empty tensor. */
QT_API void qt_tensor_free(struct qt_tensor *t);
/* Deep copy src into dst (dst's previous owned buffer is freed). */
QT_API enum qt_status qt_tensor_copy(struct qt_tensor *dst, const struct qt_tensor *src);
/* Make dst a borrowed view of src's buffer (no copy). */
QT_API void qt_tensor_view(struct qt_tensor *dst, const struct qt_tensor *src);
/* Format a shape as "[1,3,224,224]" into buf; returns buf. */
QT_API char *qt_shape_str(char *buf, size_t cap, int rank, const int64_t *dims);

/*
 * Signal-to-quantization-noise of a float tensor against a reference, summed
 * over as many calls as there are batches: sig = sum ref^2, noise = sum
 * (y - ref)^2, max_abs = largest |y - ref|, all in double.
 */
struct qt_sqnr_acc {
	double sig, noise, max_abs;
};
/* Add n elements of y against ref (both borrowed). */
QT_API void qt_sqnr_add(struct qt_sqnr_acc *a, const float *y, const float *ref, int64_t n);
/* 10 log10(sig / noise) in dB; +inf when noise is 0 (identical), NaN when
 * nothing was added. */
QT_API double qt_sqnr_db(const struct qt_sqnr_acc *a);

/* One allocation larger than this is refused (guards corrupt shapes). */
#define QT_TENSOR_MAX_BYTES ((size_t)8 << 30)

#endif
