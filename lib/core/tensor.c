/* Concrete tensors: allocation with overflow and size checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/tensor.h"

int64_t qt_tensor_numel(const struct qt_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return n;
}

enum qt_status qt_tensor_alloc(struct qt_tensor *t, enum qt_dtype dt, int rank, const int64_t *dims)
{
	if (rank < 0 || rank > QT_MAX_RANK)
		return qt_error(QT_E_INVALID_ARG, "tensor rank %d outside 0..%d", rank, QT_MAX_RANK);
	uint64_t n = 1;
	for (int i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return qt_error(QT_E_INVALID_ARG, "negative dimension %lld", (long long)dims[i]);
		if (dims[i] > 0 && n > (uint64_t)QT_TENSOR_MAX_BYTES / (uint64_t)dims[i])
			return qt_error(QT_E_NOMEM, "tensor of %d dims is larger than the %zu-byte limit", rank,
					QT_TENSOR_MAX_BYTES);
		n *= (uint64_t)dims[i];
	}
	size_t bytes = qt_dtype_nbytes(dt, (int64_t)n);
	if (bytes > QT_TENSOR_MAX_BYTES)
		return qt_error(QT_E_NOMEM, "tensor of %zu bytes is larger than the %zu-byte limit", bytes,
				QT_TENSOR_MAX_BYTES);
	/* Always allocate at least one byte so data is never NULL. */
	void *p = calloc(1, bytes ? bytes : 1);
	if (!p)
		return qt_error(QT_E_NOMEM, "out of memory allocating %zu bytes", bytes);
	qt_tensor_free(t);
	t->dtype = dt;
	t->rank = rank;
	for (int i = 0; i < rank; i++)
		t->dims[i] = dims[i];
	t->data = p;
	t->nbytes = bytes;
	t->owned = 1;
	return QT_OK;
}

void qt_tensor_free(struct qt_tensor *t)
{
	if (t->owned)
		free(t->data);
	memset(t, 0, sizeof *t);
}

enum qt_status qt_tensor_copy(struct qt_tensor *dst, const struct qt_tensor *src)
{
	struct qt_tensor tmp = {0};
	enum qt_status st = qt_tensor_alloc(&tmp, src->dtype, src->rank, src->dims);
	if (st)
		return st;
	if (src->nbytes)
		memcpy(tmp.data, src->data, src->nbytes);
	qt_tensor_free(dst);
	*dst = tmp;
	return QT_OK;
}

void qt_tensor_view(struct qt_tensor *dst, const struct qt_tensor *src)
{
	*dst = *src;
	dst->owned = 0;
}

char *qt_shape_str(char *buf, size_t cap, int rank, const int64_t *dims)
{
	size_t o = 0;
	if (cap == 0)
		return buf;
	o += (size_t)snprintf(buf + o, cap - o, "[");
	for (int i = 0; i < rank && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)dims[i]);
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
	return buf;
}

void qt_sqnr_add(struct qt_sqnr_acc *a, const float *y, const float *ref, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		double d = (double)y[i] - (double)ref[i];
		if (fabs(d) > a->max_abs)
			a->max_abs = fabs(d);
		a->sig += (double)ref[i] * ref[i];
		a->noise += d * d;
	}
}

double qt_sqnr_db(const struct qt_sqnr_acc *a)
{
	if (a->noise == 0)
		return a->sig == 0 ? NAN : INFINITY;
	return 10.0 * log10(a->sig / a->noise);
}
