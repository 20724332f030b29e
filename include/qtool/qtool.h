/*
 * qtool public API: status codes, dtypes, error messages, version.
 *
 * Every fallible function returns enum qt_status and, on failure, leaves a
 * message retrievable with qt_error_msg() that names the file, node or tensor.
 * The message buffer is thread-local; it is overwritten by the next failure.
 */
#ifndef QTOOL_QTOOL_H
#define QTOOL_QTOOL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define QT_API __attribute__((visibility("default")))
#define QT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define QT_API
#define QT_PRINTF(a, b)
#endif

#define QT_VERSION_STRING "0.1.0"

enum qt_status {
	QT_OK = 0,
	QT_E_INVALID_ARG, /* caller passed something wrong (bad flag, bad name) */
	QT_E_UNSUPPORTED, /* valid input we do not implement */
	QT_E_FORMAT,      /* malformed file or model */
	QT_E_IO,          /* open/read/write failed */
	QT_E_NOMEM,       /* allocation failed or a limit was exceeded */
	QT_E_NUMERIC,     /* NaN/Inf, zero scale, overflow */
};

/*
 * Element types. The first block mirrors ONNX TensorProto.DataType values
 * that we load; the second block is qtool's own packed quantized types,
 * which only appear in quantized graphs and .qmod files.
 */
/* The numeric values are stored in .qmod files (docs/FORMAT.md): never renumber. */
enum qt_dtype {
	QT_DTYPE_UNDEFINED = 0,
	QT_DTYPE_F32,
	QT_DTYPE_F16,
	QT_DTYPE_F64,
	QT_DTYPE_I64,
	QT_DTYPE_I32,
	QT_DTYPE_I16,
	QT_DTYPE_I8,
	QT_DTYPE_U8,
	QT_DTYPE_U16,
	QT_DTYPE_U32,
	QT_DTYPE_U64,
	QT_DTYPE_BOOL,
	QT_DTYPE_STRING, /* loaded only to be refused with a clear message */
	/* quantized storage types (packed little-endian, element 0 in the lowest bits) */
	QT_DTYPE_S4,
	QT_DTYPE_U4,
	QT_DTYPE_S2,
	QT_DTYPE_U2,
	QT_DTYPE_FP8_E4M3,
	QT_DTYPE_FP8_E5M2,
	QT_DTYPE_S3, /* 3-bit signed weight codes, a little-endian bit stream (docs/FORMAT.md) */
	/* minifloat element codes (qtool/numfmt.h), little-endian bit streams like S3 */
	QT_DTYPE_FP6_E3M2,
	QT_DTYPE_FP6_E2M3,
	QT_DTYPE_FP4_E2M1,
	QT_DTYPE_COUNT
};

/* Name of a dtype ("float32", "int8", "int4", ...); never NULL. */
QT_API const char *qt_dtype_name(enum qt_dtype dt);
/* Bits per element (1 for bool stored as byte is 8). 0 for undefined/string. */
QT_API int qt_dtype_bits(enum qt_dtype dt);
/* Bytes needed to store n elements of dt (packed types round up). */
QT_API size_t qt_dtype_nbytes(enum qt_dtype dt, int64_t n);
/* Map ONNX TensorProto.DataType to ours; QT_DTYPE_UNDEFINED if unknown. */
QT_API enum qt_dtype qt_dtype_from_onnx(int onnx_type);
/* And back; 0 if the dtype has no ONNX equivalent. */
QT_API int qt_dtype_to_onnx(enum qt_dtype dt);

/* Short name of a status ("invalid argument", "format error", ...). */
QT_API const char *qt_status_str(enum qt_status st);

/* Last error message of this thread ("" if none). Borrowed; valid until the next error. */
QT_API const char *qt_error_msg(void);
/* Set the message and return st, so callers can `return qt_error(QT_E_FORMAT, ...)`. */
QT_API enum qt_status qt_error(enum qt_status st, const char *fmt, ...) QT_PRINTF(2, 3);
/* Prefix the current message with "prefix: " (used to add file or node context). */
QT_API enum qt_status qt_error_prefix(enum qt_status st, const char *fmt, ...) QT_PRINTF(2, 3);
/* Forget the current message. */
QT_API void qt_error_clear(void);

#endif
