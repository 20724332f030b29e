/*
 * Internal: the pieces qt_model needs from the .qmod reader and the integer
 * executor (declared here so lib/rt/model.c does not reach into their files).
 */
#ifndef QT_RT_QMODEL_INT_H
#define QT_RT_QMODEL_INT_H

#include "qtool/graph.h"

struct qt_qrt;

/* 1 when the first 8 bytes are the .qmod magic. */
int qt_qmod_magic_ok(const unsigned char magic[8]);
/* Read and validate a .qmod into a new quantized graph (formats/qmod). */
enum qt_status qt_qmod_read(const char *path, struct qt_graph **out);
/* Integer executor over a quantized graph (lib/rt/qrt.c). */
enum qt_status qt_qrt_new(const struct qt_graph *g, struct qt_qrt **out);
enum qt_status qt_qrt_run(struct qt_qrt *q, const struct qt_tensor *inputs, struct qt_tensor *outputs);
void qt_qrt_free(struct qt_qrt *q);
/* Bytes of im2col buffer per thread (default 16 MiB; convolutions whose
 * buffer would be larger run in chunks of output pixels). Tests lower it to
 * exercise the chunking on small images. */
extern int64_t qt_qrt_col_budget;

#endif
