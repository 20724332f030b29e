/*
 * .qmod writer and reader; docs/FORMAT.md is the contract.
 *
 * Layout: a 64-byte header, a section table, then sections at 64-byte
 * aligned offsets, each protected by a CRC32. The metadata sections (all but
 * DATA) are zlib-compressed when that makes them smaller: names and records
 * repeat a lot, and a small model's metadata would otherwise outweigh its
 * weights. Constant payloads live in the uncompressed DATA section at 16-byte
 * aligned offsets so a reader could map them in place.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/sha256.h"
#include "kernels/kernels.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "../../lib/rt/qmodel_int.h"

static const unsigned char MAGIC[8] = {'Q', 'T', 'M', 'O', 'D', '\r', '\n', 0x1a};

enum { S_META = 1, S_STRINGS, S_VALUES, S_DIMS, S_QPARAMS, S_NODES, S_INDEX, S_ATTRS, S_REQUANT, S_GRAPH, S_DATA, S_COUNT };
static const char *const section_names[S_COUNT] = {"", "META", "STRINGS", "VALUES", "DIMS", "QPARAMS",
						   "NODES", "INDEX", "ATTRS", "REQUANT", "GRAPH", "DATA"};

#define HDR_BYTES 64
#define SEC_ENTRY 32
#define VAL_REC 40
#define QP_REC 40
#define NODE_REC 48
#define ATTR_REC 40
#define RQ_REC 32
#define MAX_COUNT (1 << 20) /* values, nodes, attributes, parameters per file */
#define PAYLOAD_ALIGN 16
#define MAX_INFLATED ((uint64_t)64 << 20) /* a metadata section's uncompressed size */
#define MAX_DEFLATE_RATIO 1032            /* deflate cannot expand data more than this */

/* The dtype codes are part of the format. */
_Static_assert(QT_DTYPE_F32 == 1 && QT_DTYPE_U8 == 8 && QT_DTYPE_BOOL == 12 && QT_DTYPE_S4 == 14 &&
		       QT_DTYPE_U2 == 17 && QT_DTYPE_FP8_E5M2 == 19 && QT_DTYPE_S3 == 20,
	       "docs/FORMAT.md fixes the dtype codes");

int qt_qmod_magic_ok(const unsigned char magic[8])
{
	return memcmp(magic, MAGIC, 8) == 0;
}

/* ---------------------------------------------------------------------- */
/* Little-endian buffers                                                    */

struct buf {
	uint8_t *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const void *src, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (src)
		memcpy(b->p + b->len, src, n);
	else
		memset(b->p + b->len, 0, n);
	b->len += n;
}

static void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(b, x, 4);
}
static void put_u64(struct buf *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}
static void put_f32(struct buf *b, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	put_u32(b, u);
}
static void align(struct buf *b, size_t a)
{
	while (b->len % a)
		put_u8(b, 0);
}

static uint32_t rd_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p)
{
	return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}
static float rd_f32(const uint8_t *p)
{
	uint32_t u = rd_u32(p);
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* Strings are stored once each in STRINGS (deduplicated by linear search
 * over what was written: graphs have a few hundred names). */
struct strtab {
	struct buf b;
};
static uint32_t str_ref(struct strtab *s, const char *str, uint32_t *len_out)
{
	size_t n = strlen(str);
	*len_out = (uint32_t)n;
	if (n == 0)
		return 0;
	for (size_t i = 0; s->b.len >= n && i + n <= s->b.len; i++)
		if (s->b.p[i] == (uint8_t)str[0] && !memcmp(s->b.p + i, str, n) && (i + n == s->b.len || s->b.p[i + n] == 0))
			if (i == 0 || s->b.p[i - 1] == 0)
				return (uint32_t)i;
	uint32_t off = (uint32_t)s->b.len;
	put(&s->b, str, n);
	put_u8(&s->b, 0);
	return off;
}

/* Payload into DATA at a PAYLOAD_ALIGN-aligned offset; returns the offset.
 * 16 bytes suits every element type and 128-bit loads; a coarser alignment
 * costs a small model more padding than its quantization parameters. */
static uint64_t data_put(struct buf *d, const void *p, size_t n)
{
	align(d, PAYLOAD_ALIGN);
	uint64_t off = d->len;
	put(d, p, n);
	return off;
}

/* ---------------------------------------------------------------------- */
/* Writer                                                                   */

static int qparam_index(const struct qt_graph *g, const struct qt_qparams *q, const struct qt_qparams **list, int n)
{
	for (int i = 0; i < n; i++)
		if (list[i] == q)
			return i;
	(void)g;
	return -1;
}

/* QPARAMS scale encodings and code ranges as stored (docs/FORMAT.md). */
enum { ENC_F32 = 1, ENC_ROW_U8 = 2, ENC_E8M0 = 3, ENC_NV_E4M3 = 4 };
enum { RANGE_DEFAULT = 0, RANGE_FULL = 1 };

static int signed_weight_type(unsigned d)
{
	return d == QT_DTYPE_I8 || d == QT_DTYPE_S4 || d == QT_DTYPE_S3 || d == QT_DTYPE_S2;
}

/* Zero points are stored only when one is not 0 (activations). */
static int zp_stored(const struct qt_qparams *q)
{
	for (int64_t k = 0; k < q->count; k++)
		if (q->zero_point[k])
			return 1;
	return 0;
}

/* Channels of the constant q describes (two-level scales need them), or 0. */
static int64_t qparams_channels(const struct qt_graph *g, const struct qt_qparams *q)
{
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_value *val = &g->values[v];
		if (val->q == q && val->init && q->axis < val->init->rank)
			return val->init->dims[q->axis];
	}
	return 0;
}

int64_t qt_qmod_qparams_bytes(const struct qt_qparams *q, int64_t channels)
{
	int64_t b = q->scale_enc == QT_SCALE_ROW_U8    ? 4 * channels + q->count
		    : q->scale_enc == QT_SCALE_E8M0    ? q->count
		    : q->scale_enc == QT_SCALE_NV_E4M3 ? 4 + q->count
						       : 4 * q->count;
	return b + (zp_stored(q) ? 4 * q->count : 0);
}

/*
 * q's scales as stored: f32 each, or (two-level) one f32 per channel, its
 * largest group scale S, followed by one byte per scale with scale =
 * qt_wscale_group_decode(S, byte). A two-level q whose scales are not
 * exactly storable is the quantizer's bug (it must round them first with
 * qt_wscale_storable): QT_E_INVALID_ARG naming the tensor.
 */
static enum qt_status put_scales(const struct qt_graph *g, const struct qt_qparams *q, struct buf *out,
				 uint32_t *channels_out)
{
	*channels_out = 0;
	if (q->scale_enc == QT_SCALE_E8M0 || q->scale_enc == QT_SCALE_NV_E4M3) {
		if (!q->scale_code)
			return qt_error(QT_E_INVALID_ARG, "block scales without their bytes");
		if (q->scale_enc == QT_SCALE_NV_E4M3)
			put_f32(out, q->tensor_scale);
		put(out, q->scale_code, (size_t)q->count);
		return QT_OK;
	}
	if (q->scale_enc != QT_SCALE_ROW_U8) {
		for (int64_t k = 0; k < q->count; k++)
			put_f32(out, q->scale[k]);
		return QT_OK;
	}
	int64_t C = qparams_channels(g, q);
	if (q->scheme != QT_QSCHEME_GROUP || C < 1 || C > UINT32_MAX || q->count % C)
		return qt_error(QT_E_INVALID_ARG, "two-level scales need a per-group weight (%lld scales, %lld channels)",
				(long long)q->count, (long long)C);
	int64_t ng = q->count / C;
	for (int64_t c = 0; c < C; c++) {
		float S = 0;
		for (int64_t j = 0; j < ng; j++)
			S = q->scale[c * ng + j] > S ? q->scale[c * ng + j] : S;
		put_f32(out, S);
	}
	for (int64_t c = 0; c < C; c++) {
		float S = 0;
		for (int64_t j = 0; j < ng; j++)
			S = q->scale[c * ng + j] > S ? q->scale[c * ng + j] : S;
		for (int64_t j = 0; j < ng; j++) {
			int b = qt_wscale_group_encode(q->scale[c * ng + j], S);
			if (b < 0)
				return qt_error(QT_E_INVALID_ARG,
						"channel %lld group %lld: scale %.9g is not S * (b + 1) / 256 of the channel's "
						"largest %.9g (round it with qt_wscale_storable before computing codes)",
						(long long)c, (long long)j, q->scale[c * ng + j], S);
			put_u8(out, (uint8_t)b);
		}
	}
	*channels_out = (uint32_t)C;
	return QT_OK;
}

uint32_t qt_qmod_version_needed(const struct qt_graph *g)
{
	for (int v = 0; v < g->n_values; v++)
		if (g->values[v].q && g->values[v].q->fmt != QT_FMT_INT)
			return 4;
	for (int i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].domain, QT_DOMAIN_QTOOL) && !strcmp(g->nodes[i].op_type, QT_OP_FAKE_QUANT))
			return 4;
	return 3;
}

enum qt_status qt_qmod_serialize(const struct qt_graph *g, uint8_t **buf_out, size_t *len_out)
{
	struct buf sec[S_COUNT];
	struct strtab st = {{0}};
	memset(sec, 0, sizeof sec);
	const struct qt_qparams **qps = calloc((size_t)g->n_values * 2 + 1, sizeof *qps);
	int nq = 0;
	if (!qps)
		return qt_error(QT_E_NOMEM, "out of memory");
	/* QPARAMS: each distinct qparams once (pass-through ops share theirs). */
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_qparams *q = g->values[v].q;
		if (q && qparam_index(g, q, qps, nq) < 0)
			qps[nq++] = q;
	}
	struct buf *D = &sec[S_DATA];
	put_u32(&sec[S_QPARAMS], (uint32_t)nq);
	for (int i = 0; i < nq; i++) {
		const struct qt_qparams *q = qps[i];
		struct buf *b = &sec[S_QPARAMS];
		put_u8(b, (uint8_t)q->qtype);
		put_u8(b, (uint8_t)q->scheme);
		put_u8(b, (uint8_t)q->axis);
		put_u8(b, (uint8_t)q->group_axis);
		put_u32(b, (uint32_t)q->group_size);
		put_u64(b, (uint64_t)q->count);
		struct buf tmp = {0};
		uint32_t channels;
		enum qt_status est = put_scales(g, q, &tmp, &channels);
		if (est) {
			for (int v = 0; v < g->n_values; v++)
				if (g->values[v].q == q) {
					qt_error_prefix(est, "tensor \"%s\"", g->values[v].name);
					break;
				}
			free(tmp.p);
			for (int j = 0; j < S_COUNT; j++)
				free(sec[j].p);
			free(st.b.p);
			free(qps);
			return est;
		}
		put_u64(b, data_put(D, tmp.p, tmp.len));
		int zps = zp_stored(q);
		tmp.len = 0;
		for (int64_t k = 0; zps && k < q->count; k++)
			put_u32(&tmp, (uint32_t)q->zero_point[k]);
		put_u64(b, zps ? data_put(D, tmp.p, tmp.len) : 0);
		put_u8(b, q->scale_enc == QT_SCALE_ROW_U8    ? ENC_ROW_U8
			  : q->scale_enc == QT_SCALE_E8M0    ? ENC_E8M0
			  : q->scale_enc == QT_SCALE_NV_E4M3 ? ENC_NV_E4M3
							     : ENC_F32);
		put_u8(b, q->full_range && signed_weight_type(q->qtype) && q->fmt == QT_FMT_INT ? RANGE_FULL
												: RANGE_DEFAULT);
		put_u8(b, (uint8_t)zps);
		put_u8(b, (uint8_t)q->fmt);
		put_u32(b, channels);
		D->oom |= tmp.oom;
		free(tmp.p);
	}
	/* VALUES + DIMS. */
	put_u32(&sec[S_VALUES], (uint32_t)g->n_values);
	uint32_t n_dims = 0;
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_value *val = &g->values[v];
		struct buf *b = &sec[S_VALUES];
		uint32_t len, off = str_ref(&st, val->name, &len);
		const struct qt_tensor *t = val->init;
		int rank = t ? t->rank : val->rank;
		const int64_t *dims = t ? t->dims : val->dims;
		put_u32(b, off);
		put_u32(b, len);
		put_u8(b, (uint8_t)(t ? t->dtype : val->dtype));
		put_u8(b, (uint8_t)(rank < 0 ? 255 : rank));
		put_u8(b, (uint8_t)((val->is_input ? 1 : 0) | (val->is_output ? 2 : 0) | (t ? 4 : 0)));
		put_u8(b, 0);
		put_u32(b, (uint32_t)(val->q ? qparam_index(g, val->q, qps, nq) : -1));
		put_u32(b, n_dims);
		put_u32(b, 0);
		for (int d = 0; d < rank; d++, n_dims++)
			put_u64(&sec[S_DIMS], (uint64_t)dims[d]);
		if (t) {
			put_u64(b, data_put(D, t->data, t->nbytes));
			put_u64(b, t->nbytes);
		} else {
			put_u64(b, 0);
			put_u64(b, 0);
		}
	}
	/* REQUANT, NODES, INDEX, ATTRS. */
	int n_rq = 0, n_attr = 0;
	uint32_t n_idx = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		n_rq += g->nodes[i].rq != NULL;
		n_attr += g->nodes[i].n_attrs;
	}
	put_u32(&sec[S_REQUANT], (uint32_t)n_rq);
	put_u32(&sec[S_NODES], (uint32_t)g->n_nodes);
	put_u32(&sec[S_ATTRS], (uint32_t)n_attr);
	int rq_i = 0, attr_i = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		struct buf *b = &sec[S_NODES];
		uint32_t l1, l2, l3;
		uint32_t o1 = str_ref(&st, n->op_type, &l1), o2 = str_ref(&st, n->domain, &l2),
			 o3 = str_ref(&st, n->name, &l3);
		put_u32(b, o1), put_u32(b, l1), put_u32(b, o2), put_u32(b, l2), put_u32(b, o3), put_u32(b, l3);
		put_u32(b, (uint32_t)n->n_inputs);
		put_u32(b, (uint32_t)n->n_outputs);
		put_u32(b, n_idx);
		for (int k = 0; k < n->n_inputs; k++, n_idx++)
			put_u32(&sec[S_INDEX], (uint32_t)n->inputs[k]);
		for (int k = 0; k < n->n_outputs; k++, n_idx++)
			put_u32(&sec[S_INDEX], (uint32_t)n->outputs[k]);
		put_u32(b, (uint32_t)n->n_attrs);
		put_u32(b, (uint32_t)attr_i);
		put_u32(b, (uint32_t)(n->rq ? rq_i : -1));
		if (n->rq) {
			struct buf *r = &sec[S_REQUANT];
			struct buf tmp = {0};
			put_u32(r, (uint32_t)n->rq->count);
			put_u32(r, (uint32_t)n->rq->qmin);
			put_u32(r, (uint32_t)n->rq->qmax);
			put_u32(r, 0);
			for (int k = 0; k < n->rq->count; k++)
				put_u32(&tmp, (uint32_t)n->rq->mult[k]);
			put_u64(r, data_put(D, tmp.p, tmp.len));
			tmp.len = 0;
			for (int k = 0; k < n->rq->count; k++)
				put_u32(&tmp, (uint32_t)n->rq->shift[k]);
			put_u64(r, data_put(D, tmp.p, tmp.len));
			D->oom |= tmp.oom;
			free(tmp.p);
			rq_i++;
		}
		for (int k = 0; k < n->n_attrs; k++, attr_i++) {
			const struct qt_attr *a = &n->attrs[k];
			struct buf *ab = &sec[S_ATTRS];
			uint32_t nl, no = str_ref(&st, a->name, &nl);
			uint64_t payload = 0;
			uint32_t cnt = (uint32_t)a->n;
			struct buf tmp = {0};
			switch (a->type) {
			case QT_ATTR_INTS:
				for (int j = 0; j < a->n; j++)
					put_u64(&tmp, (uint64_t)a->ints[j]);
				payload = data_put(D, tmp.p, tmp.len);
				break;
			case QT_ATTR_FLOATS:
				for (int j = 0; j < a->n; j++)
					put_f32(&tmp, a->floats[j]);
				payload = data_put(D, tmp.p, tmp.len);
				break;
			case QT_ATTR_STRING:
				cnt = (uint32_t)a->s_len;
				payload = data_put(D, a->s, a->s_len);
				break;
			case QT_ATTR_STRINGS:
				for (int j = 0; j < a->n; j++) {
					uint32_t sl, so = str_ref(&st, a->strings[j], &sl);
					put_u32(&tmp, so);
					put_u32(&tmp, sl);
				}
				payload = data_put(D, tmp.p, tmp.len);
				break;
			case QT_ATTR_TENSOR:
				put_u32(&tmp, (uint32_t)a->t->dtype);
				put_u32(&tmp, (uint32_t)a->t->rank);
				for (int d = 0; d < QT_MAX_RANK; d++)
					put_u64(&tmp, (uint64_t)(d < a->t->rank ? a->t->dims[d] : 0));
				put(&tmp, a->t->data, a->t->nbytes);
				cnt = (uint32_t)a->t->nbytes;
				payload = data_put(D, tmp.p, tmp.len);
				break;
			default: break;
			}
			D->oom |= tmp.oom;
			free(tmp.p);
			put_u32(ab, no);
			put_u32(ab, nl);
			put_u32(ab, (uint32_t)a->type);
			put_u32(ab, cnt);
			put_u64(ab, (uint64_t)a->i);
			put_f32(ab, a->f);
			put_u32(ab, 0);
			put_u64(ab, payload);
		}
	}
	/* GRAPH. */
	put_u32(&sec[S_GRAPH], (uint32_t)g->n_inputs);
	put_u32(&sec[S_GRAPH], (uint32_t)g->n_outputs);
	for (int i = 0; i < g->n_inputs; i++)
		put_u32(&sec[S_GRAPH], (uint32_t)g->inputs[i]);
	for (int i = 0; i < g->n_outputs; i++)
		put_u32(&sec[S_GRAPH], (uint32_t)g->outputs[i]);
	/* META: key/value strings (provenance). */
	char opset[32], irv[32];
	snprintf(opset, sizeof opset, "%d", g->opset);
	snprintf(irv, sizeof irv, "%lld", (long long)g->ir_version);
	const char *meta[][2] = {
		{"name", g->name}, {"opset", opset}, {"ir_version", irv},
		{"source_sha256", g->src_sha256_hex ? g->src_sha256_hex : ""},
		{"calib_method", g->calib_method ? g->calib_method : ""},
		{"qtool_version", g->qtool_version ? g->qtool_version : QT_VERSION_STRING},
		{"command_line", g->command_line ? g->command_line : ""},
		{"methods", g->quant_methods ? g->quant_methods : ""},
	};
	int nm = (int)(sizeof meta / sizeof meta[0]);
	put_u32(&sec[S_META], (uint32_t)nm);
	for (int i = 0; i < nm; i++) {
		uint32_t kl, ko = str_ref(&st, meta[i][0], &kl), vl, vo = str_ref(&st, meta[i][1] ? meta[i][1] : "", &vl);
		put_u32(&sec[S_META], ko), put_u32(&sec[S_META], kl), put_u32(&sec[S_META], vo), put_u32(&sec[S_META], vl);
	}
	sec[S_STRINGS] = st.b;
	for (int k = 0; k < S_COUNT; k++)
		if (sec[k].oom) {
			for (int j = 0; j < S_COUNT; j++)
				free(sec[j].p);
			free(qps);
			return qt_error(QT_E_NOMEM, "out of memory writing .qmod");
		}

	/* Assemble. */
	struct buf out = {0};
	int n_sec = S_COUNT - 1;
	put(&out, MAGIC, 8);
	put_u32(&out, qt_qmod_version_needed(g));
	put_u32(&out, (uint32_t)n_sec);
	put_u64(&out, 0); /* file bytes, patched */
	put_u64(&out, HDR_BYTES);
	put_u32(&out, 0); /* header crc, patched */
	align(&out, HDR_BYTES);
	size_t table = out.len;
	put(&out, NULL, (size_t)n_sec * SEC_ENTRY);
	int oom = qps == NULL;
	for (int s = 1; s < S_COUNT; s++) {
		align(&out, 64);
		uint64_t off = out.len;
		/* Metadata sections are stored deflated (level 9, deterministic
		 * for a given zlib) when that is smaller; DATA is always stored. */
		const uint8_t *stored = sec[s].p ? sec[s].p : (const uint8_t *)"";
		size_t stored_len = sec[s].len;
		uint64_t raw_len = 0;
		uint8_t *z = NULL;
		if (s != S_DATA && sec[s].len > 0) {
			uLongf zl = compressBound((uLong)sec[s].len);
			z = malloc(zl);
			if (!z) {
				oom = 1;
			} else if (compress2(z, &zl, sec[s].p, (uLong)sec[s].len, 9) == Z_OK && zl < sec[s].len) {
				stored = z;
				stored_len = zl;
				raw_len = sec[s].len;
			}
		}
		put(&out, stored, stored_len);
		oom |= sec[s].oom;
		if (out.oom) {
			free(z);
			break;
		}
		uint8_t *e = out.p + table + (size_t)(s - 1) * SEC_ENTRY;
		struct buf eb = {e, 0, SEC_ENTRY, 0};
		put_u32(&eb, (uint32_t)s);
		put_u32(&eb, (uint32_t)crc32(0L, stored, (uInt)stored_len));
		put_u64(&eb, off);
		put_u64(&eb, stored_len);
		put_u64(&eb, raw_len);
		free(z);
	}
	for (int s = 0; s < S_COUNT; s++)
		free(sec[s].p);
	free(qps);
	if (oom || out.oom) {
		free(out.p);
		return qt_error(QT_E_NOMEM, "out of memory writing .qmod");
	}
	struct buf hb = {out.p + 16, 0, 8, 0};
	put_u64(&hb, out.len);
	struct buf cb = {out.p + 32, 0, 4, 0};
	put_u32(&cb, (uint32_t)crc32(0L, out.p, 32));
	*buf_out = out.p;
	*len_out = out.len;
	return QT_OK;
}

enum qt_status qt_qmod_write(const struct qt_graph *g, const char *path)
{
	uint8_t *buf;
	size_t len;
	enum qt_status st = qt_qmod_serialize(g, &buf, &len);
	if (st)
		return st;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		free(buf);
		return qt_error(QT_E_IO, "%s: cannot create: %s", path, strerror(errno));
	}
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, buf + done, len - done);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	free(buf);
	if (close(fd) != 0 || done != len) {
		unlink(tmp);
		return qt_error(QT_E_IO, "%s: write failed", path);
	}
	chmod(tmp, 0644);
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return qt_error(QT_E_IO, "%s: cannot rename into place: %s", path, strerror(e));
	}
	return QT_OK;
}

/* ---------------------------------------------------------------------- */
/* Reader                                                                   */

struct rd {
	const uint8_t *p;
	size_t len;
	uint32_t version;
	const char *label;
	const uint8_t *sec[S_COUNT];
	uint64_t sec_len[S_COUNT];
	uint8_t *inflated[S_COUNT]; /* owned: decompressed metadata sections */
	struct qt_graph *g;
};

#define BAD(...) qt_error(QT_E_FORMAT, __VA_ARGS__)

/* A string reference into STRINGS, copied into the graph arena. */
static enum qt_status rd_str(struct rd *r, uint32_t off, uint32_t len, const char *what, const char **out)
{
	if ((uint64_t)off + len > r->sec_len[S_STRINGS])
		return BAD("%s: %s: string at %u+%u is outside STRINGS (%llu bytes)", r->label, what, off, len,
			   (unsigned long long)r->sec_len[S_STRINGS]);
	char *s = qt_graph_alloc(r->g, (size_t)len + 1);
	if (!s)
		return qt_error(QT_E_NOMEM, "out of memory");
	memcpy(s, r->sec[S_STRINGS] + off, len);
	if (memchr(s, 0, len))
		return BAD("%s: %s: string contains a NUL byte", r->label, what);
	*out = s;
	return QT_OK;
}

/* A payload in DATA: offset and length checked, returns a pointer. */
static enum qt_status rd_data(struct rd *r, uint64_t off, uint64_t len, const char *what, const uint8_t **out)
{
	if (off > r->sec_len[S_DATA] || len > r->sec_len[S_DATA] - off)
		return BAD("%s: %s: payload at %llu+%llu is outside DATA (%llu bytes)", r->label, what,
			   (unsigned long long)off, (unsigned long long)len, (unsigned long long)r->sec_len[S_DATA]);
	if (off % PAYLOAD_ALIGN)
		return BAD("%s: %s: payload offset %llu is not a multiple of %d", r->label, what, (unsigned long long)off,
			   PAYLOAD_ALIGN);
	*out = r->sec[S_DATA] + off;
	return QT_OK;
}

/* Record table: a u32 count then count records of rec bytes, all inside the section. */
static enum qt_status rd_table(struct rd *r, int s, size_t rec, uint32_t *count_out, const uint8_t **recs)
{
	if (r->sec_len[s] < 4)
		return BAD("%s: section %s is shorter than its count", r->label, section_names[s]);
	uint32_t c = rd_u32(r->sec[s]);
	if (c > MAX_COUNT || (uint64_t)c * rec > r->sec_len[s] - 4)
		return BAD("%s: section %s: %u records of %zu bytes do not fit in %llu bytes", r->label,
			   section_names[s], c, rec, (unsigned long long)r->sec_len[s]);
	*count_out = c;
	*recs = r->sec[s] + 4;
	return QT_OK;
}

/* Dtypes a file of this version may hold: the minifloat element types
 * (21..23) came with version 4. */
static int valid_dtype(const struct rd *r, unsigned d)
{
	unsigned last = r->version >= 4 ? QT_DTYPE_FP4_E2M1 : QT_DTYPE_S3;
	return d > QT_DTYPE_UNDEFINED && d <= last && d != QT_DTYPE_STRING;
}

/*
 * A weight constant's codes: its dtype is its qparams' code type, and every
 * code lies in the range its qparams record (restricted symmetric or full
 * two's complement), so the runtime and the simulation may rely on it.
 */
static enum qt_status check_codes(struct rd *r, const struct qt_value *v)
{
	const struct qt_tensor *t = v->init;
	if (t->dtype != v->q->qtype)
		return BAD("%s: constant \"%s\" is %s but its quantization says %s", r->label, v->name,
			   qt_dtype_name(t->dtype), qt_dtype_name(v->q->qtype));
	if (v->q->fmt != QT_FMT_INT) {
		/* Finite element codes only: no NaN or Inf (and no -128 in MXINT8). */
		int64_t n = qt_tensor_numel(t);
		for (int64_t i = 0; i < n; i++) {
			uint32_t c = (uint32_t)qt_code_get(t, i) & 0xFF;
			if (!qt_numfmt_code_ok(v->q->fmt, c))
				return BAD("%s: constant \"%s\": code 0x%02x at element %lld is not a finite %s value",
					   r->label, v->name, c, (long long)i, qt_numfmt_name(v->q->fmt));
		}
		return QT_OK;
	}
	int32_t lo, hi;
	qt_qparams_code_range(v->q, &lo, &hi);
	int64_t n = qt_tensor_numel(t);
	for (int64_t i = 0; i < n; i++) {
		int32_t c = qt_code_get(t, i);
		if (c < lo || c > hi)
			return BAD("%s: constant \"%s\": code %d at element %lld outside [%d, %d] (%s, %s range)",
				   r->label, v->name, c, (long long)i, lo, hi, qt_dtype_name(t->dtype),
				   v->q->full_range ? "full" : "restricted");
	}
	return QT_OK;
}

/*
 * A QPARAMS record's number format (offset 35, version 4): integer (0), or a
 * format of qtool/numfmt.h whose element dtype is the code dtype, with no
 * zero points and the default code range; block formats (MX, NVFP4) are
 * per group at their own block size with their own scale encoding, the
 * plain minifloats take f32 or two-level scales.
 */
static enum qt_status check_format(struct rd *r, uint32_t i, const struct qt_qparams *q, unsigned fmt, unsigned enc,
				   unsigned range, unsigned zps)
{
	if (fmt == QT_FMT_INT)
		return enc == ENC_F32 || enc == ENC_ROW_U8
			       ? QT_OK
			       : BAD("%s: qparams %u: scale encoding %u is only for number formats", r->label, i, enc);
	if (r->version < 4 || fmt >= QT_FMT_COUNT)
		return BAD("%s: qparams %u: number format %u unknown in a version %u file", r->label, i, fmt, r->version);
	enum qt_numfmt f = (enum qt_numfmt)fmt;
	int block = qt_numfmt_block(f);
	unsigned want_enc = f == QT_FMT_NVFP4 ? ENC_NV_E4M3 : ENC_E8M0;
	if (q->qtype != qt_numfmt_elem(f) || range || zps)
		return BAD("%s: qparams %u: %s needs %s codes without zero points or range flag", r->label, i,
			   qt_numfmt_name(f), qt_dtype_name(qt_numfmt_elem(f)));
	if (block ? enc != want_enc || q->scheme != QT_QSCHEME_GROUP || q->group_size != block
		  : enc != ENC_F32 && enc != ENC_ROW_U8)
		return BAD("%s: qparams %u: %s with scale encoding %u, scheme %d, group size %d (needs %s)", r->label, i,
			   qt_numfmt_name(f), enc, (int)q->scheme, q->group_size,
			   block ? "its own block scales per group of its block size" : "f32 or two-level scales");
	return QT_OK;
}

/* Block scales (encodings 3 and 4): bytes decoded into q->scale, kept in
 * q->scale_code. E8M0 255 (NaN) is refused; NVFP4's tensor scale must be
 * finite and positive and each E4M3 byte a positive finite value (0x01 to
 * 0x7E); the products are checked by the caller like every scale. */
static enum qt_status read_block_scales(struct rd *r, uint32_t i, struct qt_qparams *q, unsigned enc,
					const uint8_t *sp)
{
	const uint8_t *bytes = sp + (enc == ENC_NV_E4M3 ? 4 : 0);
	if (!(q->scale_code = qt_graph_alloc(r->g, (size_t)q->count)))
		return qt_error(QT_E_NOMEM, "out of memory");
	memcpy(q->scale_code, bytes, (size_t)q->count);
	if (enc == ENC_NV_E4M3) {
		q->tensor_scale = rd_f32(sp);
		if (!isfinite(q->tensor_scale) || !(q->tensor_scale > 0))
			return BAD("%s: qparams %u: tensor scale %g must be finite and positive", r->label, i,
				   q->tensor_scale);
	}
	for (int64_t k = 0; k < q->count; k++) {
		uint8_t b = bytes[k];
		if (enc == ENC_E8M0 ? b == QT_E8M0_NAN : b < 1 || b > 0x7E)
			return BAD("%s: qparams %u: block scale byte 0x%02x at %lld is not a positive finite %s", r->label,
				   i, b, (long long)k, enc == ENC_E8M0 ? "E8M0" : "E4M3");
		q->scale[k] = enc == ENC_E8M0 ? qt_e8m0_decode(b) : qt_nvfp4_scale(q->tensor_scale, b);
	}
	return QT_OK;
}

static enum qt_status read_body(struct rd *r)
{
	struct qt_graph *g = r->g;
	enum qt_status st;
	uint32_t nq, nv, nn, na, nr;
	const uint8_t *qrec, *vrec, *nrec, *arec, *rrec;
	if ((st = rd_table(r, S_QPARAMS, QP_REC, &nq, &qrec)) || (st = rd_table(r, S_VALUES, VAL_REC, &nv, &vrec)) ||
	    (st = rd_table(r, S_NODES, NODE_REC, &nn, &nrec)) || (st = rd_table(r, S_ATTRS, ATTR_REC, &na, &arec)) ||
	    (st = rd_table(r, S_REQUANT, RQ_REC, &nr, &rrec)))
		return st;
	/* Quantization parameters. */
	struct qt_qparams *qps = qt_graph_alloc(g, (size_t)(nq ? nq : 1) * sizeof *qps);
	uint32_t *qp_channels = qt_graph_alloc(g, (size_t)(nq ? nq : 1) * sizeof *qp_channels);
	if (!qps || !qp_channels)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (uint32_t i = 0; i < nq; i++) {
		const uint8_t *p = qrec + (size_t)i * QP_REC;
		struct qt_qparams *q = &qps[i];
		q->qtype = p[0];
		q->scheme = p[1];
		q->axis = (int8_t)p[2];
		q->group_axis = (int8_t)p[3];
		q->group_size = (int)rd_u32(p + 4);
		uint64_t cnt = rd_u64(p + 8);
		unsigned enc = p[32], range = p[33], zps = p[34], fmt = p[35];
		uint32_t channels = rd_u32(p + 36);
		if (!valid_dtype(r, q->qtype) || q->scheme < QT_QSCHEME_TENSOR || q->scheme > QT_QSCHEME_GROUP ||
		    q->axis < 0 || q->axis >= QT_MAX_RANK || q->group_size < 0 || q->group_size > 65535 || cnt == 0 ||
		    cnt > MAX_COUNT || (q->scheme == QT_QSCHEME_GROUP && q->group_size < 1))
			return BAD("%s: qparams %u: bad type, scheme, axis or count", r->label, i);
		if ((enc != ENC_F32 && enc != ENC_ROW_U8 && (r->version < 4 || enc > ENC_NV_E4M3)) || range > RANGE_FULL ||
		    zps > 1 || (range == RANGE_FULL && !signed_weight_type(q->qtype)))
			return BAD("%s: qparams %u: scale encoding %u, code range %u or zero-point flag %u unknown for %s",
				   r->label, i, enc, range, zps, qt_dtype_name(q->qtype));
		if ((st = check_format(r, i, q, fmt, enc, range, zps)))
			return st;
		q->fmt = (enum qt_numfmt)fmt;
		if (enc == ENC_ROW_U8 ? q->scheme != QT_QSCHEME_GROUP || channels == 0 || cnt % channels
				      : channels != 0)
			return BAD("%s: qparams %u: %u channel scales for %llu %s scales", r->label, i, channels,
				   (unsigned long long)cnt, enc == ENC_ROW_U8 ? "two-level group" : "f32");
		q->count = (int64_t)cnt;
		qp_channels[i] = channels;
		q->full_range = range == RANGE_FULL;
		q->scale_enc = enc == ENC_ROW_U8 ? QT_SCALE_ROW_U8
			       : enc == ENC_E8M0 ? QT_SCALE_E8M0
			       : enc == ENC_NV_E4M3 ? QT_SCALE_NV_E4M3
						    : QT_SCALE_F32;
		const uint8_t *sp = NULL, *zp = NULL;
		uint64_t sbytes = enc == ENC_ROW_U8    ? (uint64_t)channels * 4 + cnt
				  : enc == ENC_E8M0    ? cnt
				  : enc == ENC_NV_E4M3 ? 4 + cnt
						       : cnt * 4;
		if ((st = rd_data(r, rd_u64(p + 16), sbytes, "qparams scales", &sp)) ||
		    (zps && (st = rd_data(r, rd_u64(p + 24), cnt * 4, "qparams zero points", &zp))))
			return st;
		q->scale = qt_graph_alloc(g, cnt * 4);
		q->zero_point = qt_graph_alloc(g, cnt * 4);
		if (!q->scale || !q->zero_point)
			return qt_error(QT_E_NOMEM, "out of memory");
		if (enc == ENC_E8M0 || enc == ENC_NV_E4M3) {
			if ((st = read_block_scales(r, i, q, enc, sp)))
				return st;
		} else if (enc == ENC_ROW_U8) {
			/* Each channel's f32 is its largest group scale: some byte is 255. */
			uint64_t ng = cnt / channels;
			const uint8_t *bytes = sp + 4 * (size_t)channels;
			for (uint32_t c = 0; c < channels; c++) {
				float S = rd_f32(sp + 4 * (size_t)c);
				int top = 0;
				if (!isfinite(S) || !(S > 0))
					return BAD("%s: qparams %u: channel %u scale is %g; scales must be finite and positive",
						   r->label, i, c, S);
				for (uint64_t j = 0; j < ng; j++) {
					uint8_t b = bytes[c * ng + j];
					top |= b == 255;
					q->scale[c * ng + j] = qt_wscale_group_decode(S, b);
				}
				if (!top)
					return BAD("%s: qparams %u: channel %u has no group at ratio 256/256 of its scale",
						   r->label, i, c);
			}
		} else {
			for (uint64_t k = 0; k < cnt; k++)
				q->scale[k] = rd_f32(sp + 4 * k);
		}
		int32_t lo, hi;
		qt_qtype_range(q->qtype, &lo, &hi);
		if (q->qtype == QT_DTYPE_I32)
			lo = hi = 0;
		if (q->qtype != QT_DTYPE_U8 && q->qtype != QT_DTYPE_U4 && q->qtype != QT_DTYPE_U2)
			lo = hi = 0; /* weights and biases are symmetric: zero point 0 */
		for (uint64_t k = 0; k < cnt; k++) {
			q->zero_point[k] = zp ? (int32_t)rd_u32(zp + 4 * k) : 0;
			if (!isfinite(q->scale[k]) || !(q->scale[k] > 0))
				return BAD("%s: qparams %u: scale %llu is %g; scales must be finite and positive", r->label, i,
					   (unsigned long long)k, q->scale[k]);
			if (q->zero_point[k] < lo || q->zero_point[k] > hi)
				return BAD("%s: qparams %u: zero point %d outside [%d, %d] of %s", r->label, i,
					   q->zero_point[k], lo, hi, qt_dtype_name(q->qtype));
		}
	}
	/* Values. */
	const uint8_t *dims = r->sec[S_DIMS];
	uint64_t n_dims = r->sec_len[S_DIMS] / 8;
	for (uint32_t i = 0; i < nv; i++) {
		const uint8_t *p = vrec + (size_t)i * VAL_REC;
		const char *name;
		if ((st = rd_str(r, rd_u32(p), rd_u32(p + 4), "value name", &name)))
			return st;
		int vi = qt_graph_value(g, name);
		if (vi < 0)
			return qt_error(QT_E_NOMEM, "out of memory");
		if ((uint32_t)vi != i)
			return BAD("%s: value %u: name \"%s\" is used twice", r->label, i, name);
		struct qt_value *v = &g->values[vi];
		unsigned dt = p[8], rank = p[9], flags = p[10];
		int32_t qi = (int32_t)rd_u32(p + 12);
		uint32_t d0 = rd_u32(p + 16);
		uint64_t doff = rd_u64(p + 24), dlen = rd_u64(p + 32);
		if (dt != QT_DTYPE_UNDEFINED && !valid_dtype(r, dt))
			return BAD("%s: value \"%s\": unknown dtype %u", r->label, name, dt);
		if (rank != 255 && rank > QT_MAX_RANK)
			return BAD("%s: value \"%s\": rank %u exceeds %d", r->label, name, rank, QT_MAX_RANK);
		if (qi < -1 || qi >= (int32_t)nq)
			return BAD("%s: value \"%s\": qparams index %d out of range", r->label, name, qi);
		v->dtype = dt;
		v->rank = rank == 255 ? -1 : (int)rank;
		v->is_input = flags & 1;
		v->is_output = (flags >> 1) & 1;
		v->q = qi >= 0 ? &qps[qi] : NULL;
		if (v->rank > 0 && ((uint64_t)d0 + (uint64_t)v->rank > n_dims))
			return BAD("%s: value \"%s\": dims outside the DIMS section", r->label, name);
		int64_t numel = 1;
		for (int d = 0; d < v->rank; d++) {
			v->dims[d] = (int64_t)rd_u64(dims + 8 * ((size_t)d0 + (size_t)d));
			if (v->dims[d] < -1 || v->dims[d] > (1LL << 40))
				return BAD("%s: value \"%s\": dimension %d is %lld", r->label, name, d, (long long)v->dims[d]);
			if (v->dims[d] >= 0 && numel >= 0)
				numel = v->dims[d] && numel > (1LL << 40) / v->dims[d] ? -2 : numel * v->dims[d];
			else
				numel = -1;
		}
		if (flags & 4) {
			if (v->rank < 0 || numel < 0 || dt == QT_DTYPE_UNDEFINED)
				return BAD("%s: constant \"%s\" needs a dtype and a concrete shape", r->label, name);
			if (dlen != qt_dtype_nbytes(dt, numel))
				return BAD("%s: constant \"%s\": %llu payload bytes, its %s shape needs %zu", r->label, name,
					   (unsigned long long)dlen, qt_dtype_name(dt), qt_dtype_nbytes(dt, numel));
			const uint8_t *src = NULL;
			if ((st = rd_data(r, doff, dlen, name, &src)))
				return st;
			struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
			void *d = qt_graph_alloc(g, dlen ? dlen : 1);
			if (!t || !d)
				return qt_error(QT_E_NOMEM, "out of memory");
			memcpy(d, src, dlen);
			t->dtype = dt;
			t->rank = v->rank;
			memcpy(t->dims, v->dims, sizeof t->dims);
			t->data = d;
			t->nbytes = dlen;
			v->init = t;
			/* Per-channel/group parameters must match the tensor they describe. */
			if (v->q && v->q->scheme != QT_QSCHEME_TENSOR) {
				if (v->q->axis >= v->rank)
					return BAD("%s: constant \"%s\": quantization axis %d outside rank %d", r->label, name,
						   v->q->axis, v->rank);
				int64_t C = v->dims[v->q->axis], per = numel / (C ? C : 1);
				int64_t want = v->q->scheme == QT_QSCHEME_CHANNEL
						       ? C
						       : (v->q->group_size > 0 ? C * ((per + v->q->group_size - 1) / v->q->group_size) : -1);
				if (want != v->q->count)
					return BAD("%s: constant \"%s\": %lld scales, its shape needs %lld", r->label, name,
						   (long long)v->q->count, (long long)want);
				if (v->q->scale_enc == QT_SCALE_ROW_U8 && qp_channels[qi] != C)
					return BAD("%s: constant \"%s\": two-level scales for %u channels, its shape has %lld",
						   r->label, name, qp_channels[qi], (long long)C);
			}
			if (v->q && (signed_weight_type(v->q->qtype) || v->q->fmt != QT_FMT_INT) && (st = check_codes(r, v)))
				return st;
		} else if (v->q && v->q->count != 1) {
			return BAD("%s: activation \"%s\" must be quantized per tensor", r->label, name);
		} else if (v->q && v->q->fmt != QT_FMT_INT) {
			return BAD("%s: activation \"%s\": number formats are for constant weights", r->label, name);
		}
	}
	/* Requantization records. */
	struct qt_requant *rqs = qt_graph_alloc(g, (size_t)(nr ? nr : 1) * sizeof *rqs);
	if (!rqs)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (uint32_t i = 0; i < nr; i++) {
		const uint8_t *p = rrec + (size_t)i * RQ_REC;
		struct qt_requant *q = &rqs[i];
		uint32_t cnt = rd_u32(p);
		q->qmin = (int32_t)rd_u32(p + 4);
		q->qmax = (int32_t)rd_u32(p + 8);
		if (cnt == 0 || cnt > MAX_COUNT || q->qmin < 0 || q->qmax > 255 || q->qmin > q->qmax)
			return BAD("%s: requant %u: bad count or clamp [%d, %d]", r->label, i, q->qmin, q->qmax);
		const uint8_t *mp = NULL, *sp = NULL;
		if ((st = rd_data(r, rd_u64(p + 16), (uint64_t)cnt * 4, "requant multipliers", &mp)) ||
		    (st = rd_data(r, rd_u64(p + 24), (uint64_t)cnt * 4, "requant shifts", &sp)))
			return st;
		q->count = (int)cnt;
		q->mult = qt_graph_alloc(g, (size_t)cnt * 4);
		q->shift = qt_graph_alloc(g, (size_t)cnt * 4);
		if (!q->mult || !q->shift)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (uint32_t k = 0; k < cnt; k++) {
			q->mult[k] = (int32_t)rd_u32(mp + 4 * k);
			q->shift[k] = (int32_t)rd_u32(sp + 4 * k);
			if ((q->mult[k] != 0 && q->mult[k] < (1 << 30)) || q->shift[k] < 1 || q->shift[k] > 62)
				return BAD("%s: requant %u: multiplier %d or shift %d out of range", r->label, i, q->mult[k],
					   q->shift[k]);
		}
	}
	/* Nodes. */
	const uint8_t *idx = r->sec[S_INDEX];
	uint64_t n_idx = r->sec_len[S_INDEX] / 4, next_idx = 0, next_attr = 0;
	for (uint32_t i = 0; i < nn; i++) {
		const uint8_t *p = nrec + (size_t)i * NODE_REC;
		const char *op, *dom, *name;
		if ((st = rd_str(r, rd_u32(p), rd_u32(p + 4), "op type", &op)) ||
		    (st = rd_str(r, rd_u32(p + 8), rd_u32(p + 12), "domain", &dom)) ||
		    (st = rd_str(r, rd_u32(p + 16), rd_u32(p + 20), "node name", &name)))
			return st;
		int ni = qt_graph_add_node(g, op, dom, name);
		if (ni < 0)
			return qt_error(QT_E_NOMEM, "out of memory");
		struct qt_node *n = &g->nodes[ni];
		uint32_t nin = rd_u32(p + 24), nout = rd_u32(p + 28), i0 = rd_u32(p + 32), nat = rd_u32(p + 36),
			 a0 = rd_u32(p + 40);
		int32_t rqi = (int32_t)rd_u32(p + 44);
		if (nin > 1024 || nout > 1024 || (uint64_t)i0 + nin + nout > n_idx)
			return BAD("%s: node %u (%s): inputs/outputs outside the INDEX section", r->label, i, op);
		if ((uint64_t)a0 + nat > na || rqi < -1 || rqi >= (int32_t)nr)
			return BAD("%s: node %u (%s): attribute or requant index out of range", r->label, i, op);
		/* Each node owns the next run of INDEX and ATTRS entries: no sharing,
		 * so a small file cannot expand into a huge graph. */
		if (i0 != next_idx || a0 != next_attr)
			return BAD("%s: node %u (%s): INDEX or ATTRS entries out of order", r->label, i, op);
		next_idx += (uint64_t)nin + nout;
		next_attr += nat;
		n->n_inputs = (int)nin;
		n->n_outputs = (int)nout;
		n->inputs = qt_graph_alloc(g, (nin + 1) * sizeof(int));
		n->outputs = qt_graph_alloc(g, (nout + 1) * sizeof(int));
		if (!n->inputs || !n->outputs)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (uint32_t k = 0; k < nin + nout; k++) {
			int32_t v = (int32_t)rd_u32(idx + 4 * ((size_t)i0 + k));
			if (v < -1 || v >= (int32_t)nv)
				return BAD("%s: node %u (%s): value index %d out of range", r->label, i, op, v);
			if (k < nin)
				n->inputs[k] = v;
			else
				n->outputs[k - nin] = v;
		}
		n->rq = rqi >= 0 ? &rqs[rqi] : NULL;
		n->n_attrs = (int)nat;
		n->attrs = qt_graph_alloc(g, (nat + 1) * sizeof *n->attrs);
		if (!n->attrs)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (uint32_t k = 0; k < nat; k++) {
			const uint8_t *ap = arec + (size_t)(a0 + k) * ATTR_REC;
			struct qt_attr *a = &n->attrs[k];
			if ((st = rd_str(r, rd_u32(ap), rd_u32(ap + 4), "attribute name", &a->name)))
				return st;
			a->type = rd_u32(ap + 8);
			uint32_t cnt = rd_u32(ap + 12);
			a->i = (int64_t)rd_u64(ap + 16);
			a->f = rd_f32(ap + 24);
			uint64_t pay = rd_u64(ap + 32);
			const uint8_t *src = NULL;
			switch (a->type) {
			case QT_ATTR_FLOAT:
			case QT_ATTR_INT:
			case QT_ATTR_GRAPH: break;
			case QT_ATTR_INTS:
				if (cnt > MAX_COUNT || (st = rd_data(r, pay, (uint64_t)cnt * 8, a->name, &src)))
					return st ? st : BAD("%s: attribute %s too long", r->label, a->name);
				a->n = (int)cnt;
				if (!(a->ints = qt_graph_alloc(g, (size_t)cnt * 8 + 8)))
					return qt_error(QT_E_NOMEM, "out of memory");
				for (uint32_t j = 0; j < cnt; j++)
					a->ints[j] = (int64_t)rd_u64(src + 8 * j);
				break;
			case QT_ATTR_FLOATS:
				if (cnt > MAX_COUNT || (st = rd_data(r, pay, (uint64_t)cnt * 4, a->name, &src)))
					return st ? st : BAD("%s: attribute %s too long", r->label, a->name);
				a->n = (int)cnt;
				if (!(a->floats = qt_graph_alloc(g, (size_t)cnt * 4 + 4)))
					return qt_error(QT_E_NOMEM, "out of memory");
				for (uint32_t j = 0; j < cnt; j++)
					a->floats[j] = rd_f32(src + 4 * j);
				break;
			case QT_ATTR_STRING: {
				if ((st = rd_data(r, pay, cnt, a->name, &src)))
					return st;
				char *s = qt_graph_alloc(g, (size_t)cnt + 1);
				if (!s)
					return qt_error(QT_E_NOMEM, "out of memory");
				memcpy(s, src, cnt);
				a->s = s;
				a->s_len = cnt;
				break;
			}
			case QT_ATTR_STRINGS:
				if (cnt > MAX_COUNT || (st = rd_data(r, pay, (uint64_t)cnt * 8, a->name, &src)))
					return st ? st : BAD("%s: attribute %s too long", r->label, a->name);
				a->n = (int)cnt;
				if (!(a->strings = qt_graph_alloc(g, (size_t)cnt * sizeof(char *) + 8)))
					return qt_error(QT_E_NOMEM, "out of memory");
				for (uint32_t j = 0; j < cnt; j++)
					if ((st = rd_str(r, rd_u32(src + 8 * j), rd_u32(src + 8 * j + 4), a->name, &a->strings[j])))
						return st;
				break;
			case QT_ATTR_TENSOR: {
				if ((st = rd_data(r, pay, 8 + 8 * QT_MAX_RANK, a->name, &src)))
					return st;
				struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
				if (!t)
					return qt_error(QT_E_NOMEM, "out of memory");
				t->dtype = rd_u32(src);
				t->rank = (int)rd_u32(src + 4);
				if (!valid_dtype(r, t->dtype) || t->rank < 0 || t->rank > QT_MAX_RANK)
					return BAD("%s: attribute %s: bad tensor header", r->label, a->name);
				int64_t numel = 1;
				for (int d = 0; d < t->rank; d++) {
					t->dims[d] = (int64_t)rd_u64(src + 8 + 8 * d);
					if (t->dims[d] < 0 || t->dims[d] > (1LL << 30) || numel > (1LL << 30))
						return BAD("%s: attribute %s: bad tensor dims", r->label, a->name);
					numel *= t->dims[d];
				}
				t->nbytes = qt_dtype_nbytes(t->dtype, numel);
				if (t->nbytes != cnt)
					return BAD("%s: attribute %s: tensor payload size mismatch", r->label, a->name);
				/* The header is aligned, the body follows it at +72 (not a
				 * multiple of 16): check header and body as one payload. */
				const uint8_t *body = NULL;
				if ((st = rd_data(r, pay, 8 + 8 * QT_MAX_RANK + (uint64_t)cnt, a->name, &body)))
					return st;
				body += 8 + 8 * QT_MAX_RANK;
				if (!(t->data = qt_graph_alloc(g, cnt + 1)))
					return qt_error(QT_E_NOMEM, "out of memory");
				memcpy(t->data, body, cnt);
				a->t = t;
				break;
			}
			default: return BAD("%s: attribute %s: unknown type %d", r->label, a->name, (int)a->type);
			}
		}
	}
	/* Graph inputs and outputs. */
	const uint8_t *gp = r->sec[S_GRAPH];
	if (r->sec_len[S_GRAPH] < 8)
		return BAD("%s: GRAPH section too short", r->label);
	uint32_t gi = rd_u32(gp), go = rd_u32(gp + 4);
	if (gi > 1024 || go > 1024 || 8 + 4 * ((uint64_t)gi + go) > r->sec_len[S_GRAPH])
		return BAD("%s: GRAPH section: %u inputs and %u outputs do not fit", r->label, gi, go);
	g->inputs = qt_graph_alloc(g, (gi + 1) * sizeof(int));
	g->outputs = qt_graph_alloc(g, (go + 1) * sizeof(int));
	if (!g->inputs || !g->outputs)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (uint32_t k = 0; k < gi + go; k++) {
		uint32_t v = rd_u32(gp + 8 + 4 * k);
		if (v >= nv)
			return BAD("%s: GRAPH section: value index %u out of range", r->label, v);
		if (k < gi)
			g->inputs[k] = (int)v;
		else
			g->outputs[k - gi] = (int)v;
	}
	g->n_inputs = (int)gi;
	g->n_outputs = (int)go;
	/* The flags in VALUES must say exactly what GRAPH says. */
	{
		char *role = calloc((size_t)nv + 1, 1);
		if (!role)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (uint32_t k = 0; k < gi; k++)
			role[g->inputs[k]] |= 1;
		for (uint32_t k = 0; k < go; k++)
			role[g->outputs[k]] |= 2;
		for (uint32_t v = 0; v < nv; v++) {
			const struct qt_value *val = &g->values[v];
			if (val->is_input != (role[v] & 1) || val->is_output != ((role[v] >> 1) & 1) ||
			    (val->is_input && val->init)) {
				free(role);
				return BAD("%s: value \"%s\": input/output flags disagree with the GRAPH section", r->label,
					   val->name);
			}
		}
		free(role);
	}
	/* Provenance. */
	uint32_t nm;
	const uint8_t *mp;
	if ((st = rd_table(r, S_META, 16, &nm, &mp)))
		return st;
	for (uint32_t k = 0; k < nm; k++) {
		const char *key, *val;
		if ((st = rd_str(r, rd_u32(mp + 16 * k), rd_u32(mp + 16 * k + 4), "meta key", &key)) ||
		    (st = rd_str(r, rd_u32(mp + 16 * k + 8), rd_u32(mp + 16 * k + 12), "meta value", &val)))
			return st;
		if (!strcmp(key, "name"))
			g->name = val;
		else if (!strcmp(key, "opset"))
			g->opset = atoi(val);
		else if (!strcmp(key, "ir_version"))
			g->ir_version = atoll(val);
		else if (!strcmp(key, "source_sha256"))
			g->src_sha256_hex = val;
		else if (!strcmp(key, "calib_method"))
			g->calib_method = val;
		else if (!strcmp(key, "qtool_version"))
			g->qtool_version = val;
		else if (!strcmp(key, "command_line"))
			g->command_line = val;
		else if (!strcmp(key, "methods"))
			g->quant_methods = val;
	}
	if (g->opset < 1 || g->opset > 1000)
		return BAD("%s: META: opset %d out of range", r->label, g->opset);
	/* Weighted nodes (qt_is_weighted_op) with a constant weight whose codes are
	 * int8/int4/int3/int2 (matching its qparams), quantized input and output, and
	 * an int32 bias if any. The integer runtime checks shapes and attributes. */
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		if (!n->rq)
			continue;
		int op_ok = qt_is_weighted_op(n);
		const struct qt_value *w = n->n_inputs >= 2 && n->inputs[1] >= 0 ? &g->values[n->inputs[1]] : NULL;
		int w_ok = w && w->init && w->q && w->q->qtype == w->init->dtype && w->q->fmt == QT_FMT_INT &&
			   signed_weight_type(w->init->dtype);
		const struct qt_value *b = n->n_inputs >= 3 && n->inputs[2] >= 0 ? &g->values[n->inputs[2]] : NULL;
		int b_ok = !b || (b->init && b->init->dtype == QT_DTYPE_I32);
		if (!op_ok || !w_ok || !b_ok || n->n_outputs < 1 || n->outputs[0] < 0 || !g->values[n->outputs[0]].q ||
		    n->inputs[0] < 0 || !g->values[n->inputs[0]].q || g->values[n->inputs[0]].init)
			return BAD("%s: node \"%s\" (%s) has requantization but is not a Conv/Gemm/MatMul/MatMulBias with "
				   "quantized input, output, int8/int4/int3/int2 weight and int32 bias",
				   r->label, n->name, n->op_type);
	}
	return qt_graph_finalize(g);
}

static void free_inflated(struct rd *r)
{
	for (int s = 0; s < S_COUNT; s++) {
		free(r->inflated[s]);
		r->inflated[s] = NULL;
	}
}

/* Replace section s's stored (deflated) bytes by its `raw` uncompressed bytes.
 * The size is checked before allocating: at most MAX_INFLATED and at most
 * what deflate can expand the stored bytes to; the stream must end exactly at
 * the end of the section and give exactly `raw` bytes. */
static enum qt_status inflate_section(struct rd *r, int s, uint64_t raw)
{
	uint64_t sl = r->sec_len[s];
	if (s == S_DATA)
		return BAD("%s: section DATA is marked compressed; DATA is always stored", r->label);
	if (raw > MAX_INFLATED || raw > sl * MAX_DEFLATE_RATIO + 64)
		return BAD("%s: section %s claims %llu uncompressed bytes from %llu stored", r->label, section_names[s],
			   (unsigned long long)raw, (unsigned long long)sl);
	uint8_t *d = malloc((size_t)raw);
	if (!d)
		return qt_error(QT_E_NOMEM, "out of memory");
	uLongf dl = (uLongf)raw;
	uLong used = (uLong)sl;
	int zr = uncompress2(d, &dl, r->sec[s], &used);
	if (zr != Z_OK || dl != raw || used != sl) {
		free(d);
		return BAD("%s: section %s does not inflate to its %llu bytes (%s)", r->label, section_names[s],
			   (unsigned long long)raw, zr == Z_OK ? "length mismatch" : zError(zr));
	}
	r->inflated[s] = d;
	r->sec[s] = d;
	r->sec_len[s] = raw;
	return QT_OK;
}

/* The section table: every known section located, checked and (if
 * compressed) inflated. On error the caller frees what was inflated. */
static enum qt_status read_sections(struct rd *r, uint32_t ns, uint64_t table)
{
	for (uint32_t i = 0; i < ns; i++) {
		const uint8_t *e = r->p + table + (size_t)i * SEC_ENTRY;
		uint32_t kind = rd_u32(e), crc = rd_u32(e + 4);
		uint64_t off = rd_u64(e + 8), sl = rd_u64(e + 16);
		if (kind == 0 || kind >= S_COUNT)
			continue; /* unknown sections are skipped (forward compatible) */
		if (off % 64 || off > r->len || sl > r->len - off)
			return BAD("%s: section %s at %llu+%llu is misaligned or outside the file", r->label, section_names[kind],
				   (unsigned long long)off, (unsigned long long)sl);
		if (r->sec[kind])
			return BAD("%s: section %s appears twice", r->label, section_names[kind]);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
		/* (Fuzz builds skip the CRCs so mutations reach the validation below.) */
		if ((uint32_t)crc32(0L, r->p + off, (uInt)sl) != crc)
			return BAD("%s: section %s CRC mismatch (the file is damaged)", r->label, section_names[kind]);
#else
		(void)crc;
#endif
		r->sec[kind] = r->p + off;
		r->sec_len[kind] = sl;
		uint64_t raw = rd_u64(e + 24);
		enum qt_status st;
		if (raw && (st = inflate_section(r, (int)kind, raw)) != QT_OK)
			return st;
	}
	for (int s = 1; s < S_COUNT; s++)
		if (!r->sec[s])
			return BAD("%s: section %s is missing", r->label, section_names[s]);
	return QT_OK;
}

enum qt_status qt_qmod_read_mem(const void *buf, size_t len, const char *label, struct qt_graph **out)
{
	struct rd r = {.p = buf, .len = len, .label = label};
	enum qt_status st;
	*out = NULL;
	if (len < HDR_BYTES || !qt_qmod_magic_ok(r.p))
		return BAD("%s: not a .qmod file (bad magic or shorter than the header)", label);
	uint32_t ver = rd_u32(r.p + 8), ns = rd_u32(r.p + 12);
	uint64_t fbytes = rd_u64(r.p + 16), table = rd_u64(r.p + 24);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	if (rd_u32(r.p + 32) != (uint32_t)crc32(0L, r.p, 32))
		return BAD("%s: header CRC mismatch (the file is damaged)", label);
#endif
	for (int i = 36; i < HDR_BYTES; i++)
		if (r.p[i])
			return BAD("%s: header byte %d is not zero (the file is damaged)", label, i);
	if (ver != 3 && ver != QT_QMOD_VERSION)
		return qt_error(QT_E_UNSUPPORTED, "%s: .qmod version %u, this qtool reads versions 3 and %d", label, ver,
				QT_QMOD_VERSION);
	r.version = ver;
	if (fbytes != len)
		return BAD("%s: header says %llu bytes, the file has %zu (truncated?)", label, (unsigned long long)fbytes, len);
	if (ns == 0 || ns > 64 || table != HDR_BYTES || table + (uint64_t)ns * SEC_ENTRY > len)
		return BAD("%s: section table (%u entries at %llu) does not fit", label, ns, (unsigned long long)table);
	if ((st = read_sections(&r, ns, table)) != QT_OK) {
		free_inflated(&r);
		return st;
	}
	st = qt_graph_new(&r.g);
	if (st) {
		free_inflated(&r);
		return st;
	}
	r.g->path = qt_graph_strdup(r.g, label);
	/* The model's identity is the file's bytes. */
	qt_sha256(buf, len, r.g->sha256);
	st = read_body(&r);
	free_inflated(&r);
	if (st) {
		if (strncmp(qt_error_msg(), label, strlen(label)) != 0)
			qt_error_prefix(st, "%s", label);
		qt_graph_free(r.g);
		return st;
	}
	*out = r.g;
	return QT_OK;
}

enum qt_status qt_qmod_read(const char *path, struct qt_graph **out)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return qt_error(QT_E_IO, "%s: cannot open: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0) {
		fclose(f);
		return qt_error(QT_E_IO, "%s: cannot seek", path);
	}
	long n = ftell(f);
	if (n < 0 || (unsigned long)n > ((size_t)2 << 30)) {
		fclose(f);
		return qt_error(QT_E_FORMAT, "%s: not a .qmod file (size %ld)", path, n);
	}
	rewind(f);
	uint8_t *buf = malloc((size_t)n + 1);
	if (!buf) {
		fclose(f);
		return qt_error(QT_E_NOMEM, "out of memory reading %s", path);
	}
	size_t got = fread(buf, 1, (size_t)n, f);
	fclose(f);
	if (got != (size_t)n) {
		free(buf);
		return qt_error(QT_E_IO, "%s: read failed", path);
	}
	enum qt_status st = qt_qmod_read_mem(buf, (size_t)n, path, out);
	free(buf);
	return st;
}

void qt_qmod_summarize(const struct qt_graph *g, struct qt_qmod_summary *s)
{
	memset(s, 0, sizeof *s);
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_value *val = &g->values[v];
		if (val->init) {
			s->weight_bytes += (int64_t)val->init->nbytes;
			s->weight_bits += qt_tensor_numel(val->init) * qt_dtype_bits(val->init->dtype);
		}
		/* Each distinct qparams once (pass-through activations share
		 * theirs), at the bytes the file stores for it. */
		int first = val->q != NULL;
		for (int u = 0; first && u < v; u++)
			first = g->values[u].q != val->q;
		if (first)
			s->qparam_bytes += qt_qmod_qparams_bytes(val->q, val->init && val->q->axis < val->init->rank
										 ? val->init->dims[val->q->axis]
										 : 1);
	}
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].rq) {
			s->quantized_nodes++;
			s->qparam_bytes += (int64_t)g->nodes[i].rq->count * 8;
		}
		if (!qt_qrt_node_is_integer(g, i))
			s->float_nodes++;
	}
}

int qt_qmod_sections(const void *buf, size_t len, struct qt_qmod_section *out, int cap)
{
	const uint8_t *p = buf;
	if (len < HDR_BYTES)
		return 0;
	uint32_t ns = rd_u32(p + 12);
	int k = 0;
	for (uint32_t i = 0; i < ns && k < cap && HDR_BYTES + (size_t)(i + 1) * SEC_ENTRY <= len; i++) {
		const uint8_t *e = p + HDR_BYTES + (size_t)i * SEC_ENTRY;
		uint32_t kind = rd_u32(e);
		out[k].name = kind > 0 && kind < S_COUNT ? section_names[kind] : "unknown";
		out[k].offset = rd_u64(e + 8);
		out[k].length = rd_u64(e + 16);
		k++;
	}
	return k;
}
