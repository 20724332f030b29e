/*
 * Internal interface of the ONNX reader, shared by the model loader
 * (onnx_load.c) and the TensorProto reader and writer (tensorproto.c).
 *
 * Everything here treats its input as untrusted: protobuf bytes are checked
 * for nesting depth before protobuf-c sees them, unpacked into a scratch
 * arena with a byte budget, and every count, offset and length is checked
 * before it sizes an allocation or indexes a buffer.
 */
#ifndef QT_FORMATS_ONNX_INT_H
#define QT_FORMATS_ONNX_INT_H

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "onnx.pb-c.h"
#include "qtool/tensor.h"

/* Files larger than this are refused (protobuf's own 2 GiB message limit). */
#define QT_ONNX_MAX_FILE ((size_t)2 << 30)
/* Message nesting refused beyond this (protobuf-c unpacks recursively). */
#define QT_ONNX_MAX_DEPTH 100

/*
 * protobuf-c allocator drawing from a private arena, dropped at once after
 * the loader has copied what it needs (never free_unpacked). The budget
 * bounds what a small hostile input can make protobuf-c allocate: an empty
 * sub-message costs 2 bytes on the wire but ~200 bytes unpacked.
 */
struct qt_pb_scratch {
	ProtobufCAllocator pa; /* hand &pa to protobuf-c */
	struct qt_arena *arena;
	size_t used, budget;
	int over_budget; /* set when an allocation was refused for the budget */
};

/* Set up a scratch allocator for unpacking `input_len` bytes. QT_E_NOMEM on failure. */
enum qt_status qt_pb_scratch_init(struct qt_pb_scratch *s, size_t input_len);
/* Free everything unpacked through s. Safe on a zeroed or freed struct. */
void qt_pb_scratch_free(struct qt_pb_scratch *s);

/*
 * Check the wire format's nesting depth, then unpack len bytes of buf
 * (borrowed) as message type `desc` into s. *msg_out points into s's arena.
 * On failure the message (without a file label) says the bytes are truncated
 * or not `what` ("an ONNX model", "a TensorProto"): QT_E_FORMAT, or
 * QT_E_NOMEM when the scratch budget ran out.
 */
enum qt_status qt_pb_unpack(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
			    struct qt_pb_scratch *s, const char *what, ProtobufCMessage **msg_out);

/*
 * Read a whole file (at most QT_ONNX_MAX_FILE bytes) into a malloc'd buffer
 * owned by the caller. Refuses non-regular files (opened non-blocking, so a
 * FIFO cannot hang the reader). Errors are QT_E_IO or QT_E_FORMAT (too big)
 * with a message starting with the path.
 */
enum qt_status qt_onnx_read_file(const char *path, void **buf_out, size_t *len_out);

/* The folder part of path ("." when it has none) into out (cap bytes). 0, or -1 when it does not fit. */
int qt_onnx_dirname(const char *path, char *out, size_t cap);

/*
 * Convert a TensorProto into *out: dtype, shape and data, checked completely
 * (supported dtype, rank <= QT_MAX_RANK, non-negative dims, exact element
 * counts, one data source, external data inside `dir`).
 *  - `what` names the tensor in messages, e.g. `initializer "w"`; borrowed.
 *  - `dir`: folder that external data locations are relative to, or NULL to
 *    refuse external data.
 *  - `arena`: non-NULL puts the data in that arena (out->owned = 0, the
 *    arena's lifetime); NULL mallocs it (out->owned = 1).
 * On failure *out is left empty (nothing to free) and the message starts
 * with `what`.
 */
enum qt_status qt_onnx_tensor_convert(const Onnx__TensorProto *tp, const char *what, const char *dir,
				      struct qt_arena *arena, struct qt_tensor *out);

#endif
