/*
 * Bump allocator freed all at once (one per stage: graph, calibration,
 * runtime). Allocations are 16-byte aligned and zeroed.
 */
#ifndef QT_CORE_ARENA_H
#define QT_CORE_ARENA_H

#include <stddef.h>

struct qt_arena;

struct qt_arena *qt_arena_new(size_t chunk_bytes);
void qt_arena_free(struct qt_arena *a);
/* NULL on out-of-memory. */
void *qt_arena_alloc(struct qt_arena *a, size_t n);
char *qt_arena_strdup(struct qt_arena *a, const char *s);
char *qt_arena_strndup(struct qt_arena *a, const char *s, size_t n);
/* Bytes handed out so far. */
size_t qt_arena_used(const struct qt_arena *a);

#endif
