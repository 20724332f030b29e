/*
 * IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
 *
 * Layout: a big-endian header of 4 magic bytes 00 00 TYPE NDIMS, NDIMS
 * big-endian uint32 dimensions, then the elements in C order. Only TYPE 0x08
 * (unsigned byte) is supported, with NDIMS 1..4: MNIST images are
 * 0x00000803 [n, rows, cols], labels 0x00000801 [n]. An "item" is one slice
 * along dimension 0 (one image, one label).
 *
 * Compression is detected from the first two bytes (1f 8b), not from the
 * file name. A plain file's size must equal header + data exactly (checked
 * at open). A gzip stream's length is only known by decompressing it, so a
 * truncated or corrupt .gz is reported when a read reaches the damage
 * ("t10k-images-idx3-ubyte.gz: truncated at item 5123 of 10000"), and the
 * first read that reaches the last item also checks that nothing follows it
 * and that the gzip checksum matches.
 *
 * Reads are streaming: memory is bounded by what the caller asks for. gzip
 * streams are sequential, so reading forward from where the last read ended
 * costs nothing extra, a forward jump decompresses and discards, and a
 * backward jump restarts decompression from the beginning (zlib's gzseek).
 */
#ifndef QTOOL_IDX_H
#define QTOOL_IDX_H

#include "qtool/tensor.h"

#define QT_IDX_MAX_RANK 4

struct qt_idx_info {
	int rank;                      /* 1..4 */
	int64_t dims[QT_IDX_MAX_RANK]; /* dims[0] = number of items */
	uint64_t item_bytes;           /* product of dims[1..] (1 for rank 1), > 0 */
	uint64_t data_offset;          /* header bytes: 4 + 4 * rank */
	int gzip;                      /* the file is gzip-compressed */
};

/* One open IDX file (opaque). */
struct qt_idx_reader;

/*
 * Open path (borrowed; copied) and validate its header. *out is owned by the
 * caller: close with qt_idx_close. On error *out is NULL and the message is
 * "cannot open PATH: <strerror>" or starts with "PATH: ".
 * Errors: QT_E_IO, QT_E_FORMAT (bad magic, truncated header, size mismatch
 * of a plain file), QT_E_UNSUPPORTED (element type other than u8), QT_E_NOMEM.
 */
QT_API enum qt_status qt_idx_open(const char *path, struct qt_idx_reader **out);

/* Header of an open reader (borrowed; valid until qt_idx_close). */
QT_API const struct qt_idx_info *qt_idx_reader_info(const struct qt_idx_reader *r);

/* The path the reader was opened with (borrowed; valid until qt_idx_close). */
QT_API const char *qt_idx_reader_path(const struct qt_idx_reader *r);

/*
 * Read items [start, start + count) into dst (borrowed), which must hold
 * count * item_bytes bytes. Errors: QT_E_INVALID_ARG for a range outside
 * [0, dims[0]]; QT_E_FORMAT for a truncated or corrupt gzip stream or data
 * after the last item ("PATH: truncated at item K of N"); QT_E_IO for read
 * failures. After an error, dst holds unspecified bytes.
 */
QT_API enum qt_status qt_idx_read(struct qt_idx_reader *r, int64_t start, int64_t count, uint8_t *dst);

/* Close the file and free r. Safe on NULL. */
QT_API void qt_idx_close(struct qt_idx_reader *r);

/*
 * Read a whole IDX file into out as a uint8 tensor of the header's shape
 * (previous owned buffer freed; out owns the new one). On error out is
 * unchanged. Errors as qt_idx_open and qt_idx_read.
 */
QT_API enum qt_status qt_idx_read_all(const char *path, struct qt_tensor *out);

#endif
