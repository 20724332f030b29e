/* Chunked bump allocator; see arena.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct chunk {
	struct chunk *next;
	size_t cap, used;
	_Alignas(16) unsigned char data[];
};

struct qt_arena {
	struct chunk *head;
	size_t chunk_bytes;
	size_t used;
};

struct qt_arena *qt_arena_new(size_t chunk_bytes)
{
	struct qt_arena *a = calloc(1, sizeof *a);
	if (a)
		a->chunk_bytes = chunk_bytes ? chunk_bytes : 64 * 1024;
	return a;
}

void qt_arena_free(struct qt_arena *a)
{
	if (!a)
		return;
	for (struct chunk *c = a->head, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(a);
}

void *qt_arena_alloc(struct qt_arena *a, size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;
	if (need < n)
		return NULL;
	struct chunk *c = a->head;
	if (!c || c->cap - c->used < need) {
		size_t cap = need > a->chunk_bytes ? need : a->chunk_bytes;
		if (cap > SIZE_MAX - sizeof *c)
			return NULL;
		c = malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		/* Big one-off blocks go behind the head so the head keeps its free space. */
		if (a->head && need > a->chunk_bytes) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	void *p = c->data + c->used;
	c->used += need;
	a->used += need;
	memset(p, 0, n);
	return p;
}

char *qt_arena_strndup(struct qt_arena *a, const char *s, size_t n)
{
	char *p = qt_arena_alloc(a, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *qt_arena_strdup(struct qt_arena *a, const char *s)
{
	return qt_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

size_t qt_arena_used(const struct qt_arena *a)
{
	return a->used;
}
