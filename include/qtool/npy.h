/*
 * NumPy .npy files: whole-array read and write, and a streaming reader that
 * reads slices of rows along dimension 0 without loading the whole array.
 *
 * Supported: format versions 1.0, 2.0 and 3.0; C order only (fortran_order
 * True is refused); rank 0..QT_MAX_RANK; the little-endian dtypes
 *   '<f4' float32  '<f8' float64  '<f2' float16
 *   '<i8' int64    '<i4' int32    '<i2' int16    '|i1' int8
 *   '<u8' uint64   '<u4' uint32   '<u2' uint16   '|u1' uint8   '|b1' bool
 * (one-byte types accept any byte-order mark, '|' '<' '>' '=', as NumPy does).
 * Big-endian multi-byte dtypes, structured dtypes and object arrays are
 * refused with a message naming the file and the header field.
 *
 * Every header is validated completely: magic, version, header length
 * against the file, dict syntax (keys 'descr', 'fortran_order', 'shape',
 * each exactly once), dims non-negative, element count and byte size free
 * of overflow, and the data length equal to numel * itemsize exactly (no
 * missing and no trailing bytes).
 */
#ifndef QTOOL_NPY_H
#define QTOOL_NPY_H

#include "qtool/tensor.h"

/* Header of one .npy file, as validated by qt_npy_parse_header. */
struct qt_npy_info {
	enum qt_dtype dtype;
	int rank;
	int64_t dims[QT_MAX_RANK];
	int version_major;   /* 1, 2 or 3 */
	size_t data_offset;  /* bytes from the start of the file to the first element */
	size_t itemsize;     /* bytes per element */
	uint64_t numel;      /* product of dims (1 for rank 0) */
	uint64_t data_bytes; /* numel * itemsize */
};

/* Streaming reader over one open .npy file (opaque). */
struct qt_npy_reader;

/*
 * Parse and validate the header at the start of buf (len bytes, borrowed;
 * the data need not follow). label (borrowed) names the source in messages. On
 * success fills *info_out; the data length is NOT checked here (the callers
 * compare info_out->data_offset + data_bytes with the real length).
 * Errors: QT_E_FORMAT (malformed), QT_E_UNSUPPORTED (valid but not handled:
 * big-endian, structured, fortran order, rank > 8).
 */
QT_API enum qt_status qt_npy_parse_header(const void *buf, size_t len, const char *label,
					  struct qt_npy_info *info_out);

/*
 * Read a whole .npy file into out (any previous owned buffer of out is
 * freed; out owns the new buffer: free with qt_tensor_free). path is
 * borrowed. Errors: QT_E_IO (cannot open/read), QT_E_FORMAT,
 * QT_E_UNSUPPORTED, QT_E_NOMEM; the message starts with the path. On error
 * out is left unchanged.
 */
QT_API enum qt_status qt_npy_read(const char *path, struct qt_tensor *out);

/*
 * The same from len bytes at buf (borrowed; copied into out). label names the
 * source in messages. The buffer must hold exactly header + data.
 */
QT_API enum qt_status qt_npy_read_mem(const void *buf, size_t len, const char *label, struct qt_tensor *out);

/*
 * Write t (borrowed) as a version 1.0 .npy file at path. The bytes go to a
 * temporary file in the same folder that is renamed over path only once
 * complete and flushed, so path never holds a half-written array; on error
 * the temporary is removed and path is untouched. The new file has mode 0644.
 * Errors: QT_E_UNSUPPORTED for dtypes NumPy cannot hold unpacked (int4, fp8,
 * string...), QT_E_INVALID_ARG for an inconsistent tensor, QT_E_IO.
 */
QT_API enum qt_status qt_npy_write(const char *path, const struct qt_tensor *t);

/*
 * Open path (borrowed; copied) for streaming: validates the header and that
 * the file size equals header + data exactly. *out is owned by the caller:
 * close with qt_npy_close. On error *out is NULL.
 */
QT_API enum qt_status qt_npy_open(const char *path, struct qt_npy_reader **out);

/* Header of an open reader r (borrowed; the result is valid until qt_npy_close). */
QT_API const struct qt_npy_info *qt_npy_reader_info(const struct qt_npy_reader *r);

/*
 * Read rows [start, start + count) along dim 0 into out, which becomes an
 * owned tensor of shape [count, dims[1:]] (previous owned buffer freed).
 * Only count rows are held in memory. Errors: QT_E_INVALID_ARG for a rank-0
 * array or a range outside [0, dims[0]], QT_E_IO when the file shrank or a
 * read failed, QT_E_NOMEM.
 */
QT_API enum qt_status qt_npy_read_rows(struct qt_npy_reader *r, int64_t start, int64_t count,
				       struct qt_tensor *out);

/*
 * The same into a caller buffer dst (borrowed) of cap bytes, which must hold
 * count rows (count * row bytes); no allocation.
 */
QT_API enum qt_status qt_npy_read_rows_into(struct qt_npy_reader *r, int64_t start, int64_t count, void *dst,
					    size_t cap);

/* Close the file and free r. Safe on NULL. */
QT_API void qt_npy_close(struct qt_npy_reader *r);

/*
 * Check that every element of a float tensor t (borrowed; float32, float64,
 * float16) is finite. Returns QT_OK for other dtypes, and QT_E_NUMERIC with the message
 * "<label>: element 123 is NaN" (or "+Inf", "-Inf") for the first bad
 * element, counting in row-major order from 0. label is borrowed.
 */
QT_API enum qt_status qt_tensor_check_finite(const struct qt_tensor *t, const char *label);

#endif
