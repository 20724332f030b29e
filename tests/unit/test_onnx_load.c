/*
 * ONNX loader, TensorProto reader/writer and sha256.
 *
 * Real models come from Debian's libonnx-testdata; synthetic ones are built
 * with the protobuf-c API, packed to bytes and loaded with
 * qt_graph_load_onnx_mem, so each test states exactly what the file holds.
 * Every refusal checks the status and that the message names the file label
 * and the tensor, node or path at fault. Random inputs use fixed seeds,
 * printed on failure.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "onnx.pb-c.h"
#include "qtool/graph.h"
#include "qtool/onnx.h"

#define TD "/usr/share/libonnx-testdata/data"
#define CONV_MODEL TD "/node/test_conv_with_strides_padding/model.onnx"
#define TORCH_CONV TD "/pytorch-converted/test_Conv2d/model.onnx"
#define CONST_MODEL TD "/node/test_constant/model.onnx"

/* ---- helpers ------------------------------------------------------------- */

/* Every allocation of a synthetic model, freed in one go by pool_free. */
static void *pool[4096];
static int n_pool;

static void *pnew(size_t n)
{
	cr_assert(n_pool < (int)(sizeof pool / sizeof pool[0]));
	void *p = calloc(1, n ? n : 1);
	cr_assert(p);
	return pool[n_pool++] = p;
}

static char *pstr(const char *s)
{
	char *p = pnew(strlen(s) + 1);
	strcpy(p, s);
	return p;
}

static void pool_free(void)
{
	while (n_pool)
		free(pool[--n_pool]);
}

#define CAP 64 /* capacity of every repeated field we build */

/* A model with one graph importing opset `opset` of the default domain (0 = none). */
static Onnx__ModelProto *model_new(int opset)
{
	Onnx__ModelProto *m = pnew(sizeof *m);
	onnx__model_proto__init(m);
	m->has_ir_version = 1;
	m->ir_version = 8;
	m->opset_import = pnew(CAP * sizeof(void *));
	if (opset) {
		Onnx__OperatorSetIdProto *op = pnew(sizeof *op);
		onnx__operator_set_id_proto__init(op);
		op->domain = pstr("");
		op->has_version = 1;
		op->version = opset;
		m->opset_import[m->n_opset_import++] = op;
	}
	Onnx__GraphProto *g = pnew(sizeof *g);
	onnx__graph_proto__init(g);
	g->name = pstr("synthetic");
	g->node = pnew(CAP * sizeof(void *));
	g->initializer = pnew(CAP * sizeof(void *));
	g->input = pnew(CAP * sizeof(void *));
	g->output = pnew(CAP * sizeof(void *));
	g->value_info = pnew(CAP * sizeof(void *));
	m->graph = g;
	return m;
}

static Onnx__TensorProto *tensor_new(const char *name, int onnx_type, int rank, const int64_t *dims)
{
	Onnx__TensorProto *t = pnew(sizeof *t);
	onnx__tensor_proto__init(t);
	t->name = pstr(name);
	t->has_data_type = 1;
	t->data_type = onnx_type;
	t->n_dims = (size_t)rank;
	t->dims = pnew((size_t)(rank ? rank : 1) * sizeof(int64_t));
	if (rank)
		memcpy(t->dims, dims, (size_t)rank * sizeof(int64_t));
	return t;
}

static void set_raw(Onnx__TensorProto *t, const void *data, size_t n)
{
	t->has_raw_data = 1;
	t->raw_data.len = n;
	t->raw_data.data = pnew(n);
	memcpy(t->raw_data.data, data, n);
}

static Onnx__TensorProto *add_init(Onnx__ModelProto *m, Onnx__TensorProto *t)
{
	m->graph->initializer[m->graph->n_initializer++] = t;
	return t;
}

/* A tensor-typed ValueInfoProto; rank < 0 for no shape; dims[i] < 0 become dim_param "N". */
static Onnx__ValueInfoProto *vinfo(const char *name, int elem, int rank, const int64_t *dims)
{
	Onnx__ValueInfoProto *v = pnew(sizeof *v);
	onnx__value_info_proto__init(v);
	v->name = pstr(name);
	Onnx__TypeProto *tp = pnew(sizeof *tp);
	onnx__type_proto__init(tp);
	Onnx__TypeProto__Tensor *tt = pnew(sizeof *tt);
	onnx__type_proto__tensor__init(tt);
	tt->has_elem_type = 1;
	tt->elem_type = elem;
	if (rank >= 0) {
		Onnx__TensorShapeProto *sp = pnew(sizeof *sp);
		onnx__tensor_shape_proto__init(sp);
		sp->dim = pnew((size_t)(rank + 1) * sizeof(void *));
		for (int i = 0; i < rank; i++) {
			Onnx__TensorShapeProto__Dimension *d = pnew(sizeof *d);
			onnx__tensor_shape_proto__dimension__init(d);
			if (dims[i] >= 0) {
				d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
				d->dim_value = dims[i];
			} else {
				d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
				d->dim_param = pstr("N");
			}
			sp->dim[sp->n_dim++] = d;
		}
		tt->shape = sp;
	}
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	v->type = tp;
	return v;
}

static void add_input(Onnx__ModelProto *m, const char *name, int rank, const int64_t *dims)
{
	m->graph->input[m->graph->n_input++] = vinfo(name, 1, rank, dims);
}

static void add_output(Onnx__ModelProto *m, const char *name)
{
	m->graph->output[m->graph->n_output++] = vinfo(name, 1, -1, NULL);
}

/* Split a comma-separated list ("a,,b" has an empty middle name) into a char* array. */
static size_t split(const char *list, char ***out)
{
	*out = pnew(CAP * sizeof(char *));
	size_t n = 0;
	if (!*list)
		return 0;
	for (const char *p = list;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *s = pnew(len + 1);
		memcpy(s, p, len);
		(*out)[n++] = s;
		if (!e)
			break;
		p = e + 1;
	}
	return n;
}

static Onnx__NodeProto *add_node(Onnx__ModelProto *m, const char *op, const char *name, const char *ins,
				 const char *outs)
{
	Onnx__NodeProto *n = pnew(sizeof *n);
	onnx__node_proto__init(n);
	n->op_type = pstr(op);
	n->name = pstr(name);
	n->n_input = split(ins, &n->input);
	n->n_output = split(outs, &n->output);
	n->attribute = pnew(CAP * sizeof(void *));
	m->graph->node[m->graph->n_node++] = n;
	return n;
}

static Onnx__AttributeProto *add_attr(Onnx__NodeProto *n, const char *name, int type)
{
	Onnx__AttributeProto *a = pnew(sizeof *a);
	onnx__attribute_proto__init(a);
	a->name = pstr(name);
	a->has_type = 1;
	a->type = type;
	n->attribute[n->n_attribute++] = a;
	return a;
}

/* Pack m into a malloc'd buffer. */
static uint8_t *pack(const Onnx__ModelProto *m, size_t *len)
{
	*len = onnx__model_proto__get_packed_size(m);
	uint8_t *buf = malloc(*len ? *len : 1);
	cr_assert(buf);
	onnx__model_proto__pack(m, buf);
	return buf;
}

/* Pack and load m from memory with label "mem.onnx"; frees the pool. */
static enum qt_status load(Onnx__ModelProto *m, const char *dir, struct qt_graph **g)
{
	size_t len;
	uint8_t *buf = pack(m, &len);
	pool_free();
	enum qt_status st = qt_graph_load_onnx_mem(buf, len, dir, "mem.onnx", g);
	free(buf);
	if (st)
		cr_assert_null(*g);
	return st;
}

/* Assert that the last message starts with `label: ` and contains each of the NULL-terminated needles. */
static void expect_msg(const char *label, ...)
{
	const char *msg = qt_error_msg();
	size_t n = strlen(label);
	cr_assert(strncmp(msg, label, n) == 0 && msg[n] == ':', "message does not start with \"%s:\": %s", label,
		  msg);
	va_list ap;
	va_start(ap, label);
	for (const char *s; (s = va_arg(ap, const char *));)
		cr_assert(strstr(msg, s), "message lacks \"%s\": %s", s, msg);
	va_end(ap);
}

/* Expect loading m to fail with st and a message naming the label and the needles. */
#define EXPECT_FAIL(m, dir, st_want, ...)                                                                    \
	do {                                                                                                 \
		struct qt_graph *g_ = (struct qt_graph *)1;                                                  \
		enum qt_status st_ = load((m), (dir), &g_);                                                  \
		cr_assert_eq(st_, (st_want), "status %d (%s), want %d: %s", st_, qt_status_str(st_), st_want, \
			     qt_error_msg());                                                                \
		expect_msg("mem.onnx", __VA_ARGS__, NULL);                                                   \
	} while (0)

static const struct qt_value *val(const struct qt_graph *g, const char *name)
{
	int i = qt_graph_find_value(g, name);
	cr_assert(i >= 0, "no value \"%s\"", name);
	return &g->values[i];
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n + 1);
	cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f, "cannot create %s", path);
	cr_assert(fwrite(data, 1, n, f) == n);
	fclose(f);
}

/* xorshift64*, for reproducible random inputs. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* ---- sha256 ---------------------------------------------------------------- */

Test(sha256, fips_vectors)
{
	char hex[65];
	uint8_t d[32];
	qt_sha256("", 0, d);
	cr_assert_str_eq(qt_sha256_hex(d, hex), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	qt_sha256("abc", 3, d);
	cr_assert_str_eq(qt_sha256_hex(d, hex), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	qt_sha256(two, strlen(two), d);
	cr_assert_str_eq(qt_sha256_hex(d, hex), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* One million 'a', fed in uneven pieces to exercise the block buffer. */
	static char a[1000000];
	memset(a, 'a', sizeof a);
	struct qt_sha256 s;
	qt_sha256_init(&s);
	size_t off = 0, step = 1;
	while (off < sizeof a) {
		size_t n = step < sizeof a - off ? step : sizeof a - off;
		qt_sha256_update(&s, a + off, n);
		off += n;
		step = step * 7 % 131 + 1;
	}
	qt_sha256_final(&s, d);
	cr_assert_str_eq(qt_sha256_hex(d, hex), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, matches_sha256sum)
{
	FILE *p = popen("sha256sum " CONV_MODEL, "r");
	cr_assert(p);
	char want[65] = {0};
	cr_assert(fscanf(p, "%64s", want) == 1);
	pclose(p);
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx(CONV_MODEL, &g), QT_OK, "%s", qt_error_msg());
	char hex[65];
	cr_assert_str_eq(qt_sha256_hex(g->sha256, hex), want);
	qt_graph_free(g);
}

/* ---- real models ------------------------------------------------------------ */

Test(onnx_load, conv_with_strides_padding)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx(CONV_MODEL, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_str_eq(g->path, CONV_MODEL);
	cr_assert_str_eq(g->name, "test_conv_with_strides_padding");
	cr_assert_eq(g->ir_version, 6);
	cr_assert_eq(g->opset, 11);
	cr_assert_eq(g->n_opsets, 1);
	cr_assert_str_eq(g->opset_domains[0], "");
	cr_assert_eq(g->n_inputs, 2);
	cr_assert_eq(g->n_outputs, 1);
	const struct qt_value *x = &g->values[g->inputs[0]];
	cr_assert_str_eq(x->name, "x");
	cr_assert(x->is_input && !x->is_output && !x->init);
	cr_assert_eq(x->dtype, QT_DTYPE_F32);
	cr_assert_eq(x->rank, 4);
	const int64_t xd[4] = {1, 1, 7, 5};
	cr_assert_arr_eq(x->dims, xd, sizeof xd);
	const struct qt_value *y = &g->values[g->outputs[0]];
	cr_assert_str_eq(y->name, "y");
	cr_assert(y->is_output);
	const int64_t yd[4] = {1, 1, 4, 3};
	cr_assert_arr_eq(y->dims, yd, sizeof yd);

	cr_assert_eq(g->n_nodes, 1);
	const struct qt_node *n = &g->nodes[0];
	cr_assert_str_eq(n->op_type, "Conv");
	cr_assert_str_eq(n->domain, "");
	cr_assert_str_eq(n->name, "");
	cr_assert_eq(n->n_inputs, 2);
	cr_assert_eq(n->inputs[0], g->inputs[0]);
	cr_assert_eq(n->outputs[0], g->outputs[0]);
	const int64_t *v;
	cr_assert_eq(qt_node_attr_ints(n, "kernel_shape", &v), 2);
	cr_assert(v[0] == 3 && v[1] == 3);
	cr_assert_eq(qt_node_attr_ints(n, "pads", &v), 4);
	cr_assert(v[0] == 1 && v[1] == 1 && v[2] == 1 && v[3] == 1);
	cr_assert_eq(qt_node_attr_ints(n, "strides", &v), 2);
	cr_assert(v[0] == 2 && v[1] == 2);
	cr_assert_eq(y->producer, 0);
	cr_assert_eq(x->n_consumers, 1);
	qt_graph_free(g);
}

/* Old exporters list initializers among the graph inputs; they are not inputs. */
Test(onnx_load, initializers_listed_as_inputs)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx(TORCH_CONV, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(g->ir_version, 3);
	cr_assert_eq(g->opset, 6);
	cr_assert_eq(g->n_inputs, 1);
	cr_assert_str_eq(g->values[g->inputs[0]].name, "0");
	const struct qt_value *w = val(g, "1"), *b = val(g, "2");
	cr_assert(w->init && b->init);
	cr_assert(!w->is_input);
	cr_assert_eq(w->init->dtype, QT_DTYPE_F32);
	cr_assert_eq(w->init->rank, 4);
	const int64_t wd[4] = {4, 3, 3, 2};
	cr_assert_arr_eq(w->init->dims, wd, sizeof wd);
	cr_assert_eq(w->init->nbytes, 4 * 3 * 3 * 2 * 4u);
	cr_assert_eq(w->init->owned, 0);
	/* The first weight as stored in the file: bytes 1b 5f 12 be. */
	uint32_t bits;
	memcpy(&bits, w->init->data, 4);
	cr_assert_eq(bits, 0xbe125f1bu);
	cr_assert_eq(w->rank, 4);
	cr_assert_eq(w->dtype, QT_DTYPE_F32);
	cr_assert_eq(b->init->dims[0], 4);
	const struct qt_node *n = &g->nodes[0];
	cr_assert_eq(qt_node_attr_int(n, "group", 0), 1);
	qt_graph_free(g);
}

Test(onnx_load, constant_model_is_folded)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx(CONST_MODEL, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(g->n_nodes, 0);
	const struct qt_value *v = val(g, "values");
	cr_assert(v->init && v->is_output);
	struct qt_tensor want;
	char name[32];
	cr_assert_eq(qt_tensor_read_pb(TD "/node/test_constant/test_data_set_0/output_0.pb", &want, name, sizeof name),
		     QT_OK, "%s", qt_error_msg());
	cr_assert_eq(v->init->dtype, want.dtype);
	cr_assert_eq(v->init->rank, want.rank);
	cr_assert_arr_eq(v->init->dims, want.dims, sizeof(int64_t) * (size_t)want.rank);
	cr_assert_eq(v->init->nbytes, want.nbytes);
	cr_assert_arr_eq(v->init->data, want.data, want.nbytes);
	qt_tensor_free(&want);
	qt_graph_free(g);
}

/* Every model in the node suite either loads or is refused with a message naming it. */
Test(onnx_load, node_suite_loads_or_refuses_cleanly)
{
	FILE *p = popen("ls " TD "/node", "r");
	cr_assert(p);
	char dir[256];
	int ok = 0, refused = 0;
	while (fscanf(p, "%255s", dir) == 1) {
		char path[512];
		snprintf(path, sizeof path, TD "/node/%s/model.onnx", dir);
		struct qt_graph *g;
		if (qt_graph_load_onnx(path, &g) == QT_OK) {
			ok++;
			for (int i = 0; i < g->n_nodes; i++)
				cr_assert(strcmp(g->nodes[i].op_type, "Constant") != 0, "%s kept a Constant", path);
			qt_graph_free(g);
		} else {
			refused++;
			cr_assert_null(g);
			expect_msg(path, NULL);
		}
	}
	pclose(p);
	/* The refusals are bfloat16 values and training-only models without the default opset. */
	cr_assert(ok > 900 && refused < 20, "%d loaded, %d refused", ok, refused);
}

Test(onnx_load, missing_file_names_it)
{
	struct qt_graph *g = (struct qt_graph *)1;
	cr_assert_eq(qt_graph_load_onnx("/nonexistent/dir/model.onnx", &g), QT_E_IO);
	cr_assert_null(g);
	expect_msg("/nonexistent/dir/model.onnx", "cannot open", NULL);
	cr_assert_eq(qt_graph_load_onnx("/tmp", &g), QT_E_IO);
	expect_msg("/tmp", "not a regular file", NULL);
}

/* ---- TensorProto files -------------------------------------------------------- */

Test(tensor_pb, read_backend_inputs)
{
	struct qt_tensor t;
	char name[64];
	const char *p = TD "/node/test_conv_with_strides_padding/test_data_set_0/input_0.pb";
	cr_assert_eq(qt_tensor_read_pb(p, &t, name, sizeof name), QT_OK, "%s", qt_error_msg());
	cr_assert_str_eq(name, "x");
	cr_assert_eq(t.dtype, QT_DTYPE_F32);
	cr_assert_eq(t.rank, 4);
	const int64_t d[4] = {1, 1, 7, 5};
	cr_assert_arr_eq(t.dims, d, sizeof d);
	cr_assert_eq(t.nbytes, 35 * 4u);
	cr_assert(t.owned);
	/* test_conv_with_strides_padding's x is 0..34. */
	for (int i = 0; i < 35; i++)
		cr_assert_eq(((float *)t.data)[i], (float)i);
	qt_tensor_free(&t);

	p = TD "/node/test_reshape_reordered_all_dims/test_data_set_0/input_1.pb";
	cr_assert_eq(qt_tensor_read_pb(p, &t, NULL, 0), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(t.dtype, QT_DTYPE_I64);
	cr_assert(t.rank == 1 && t.dims[0] == 3);
	qt_tensor_free(&t);
}

Test(tensor_pb, errors_name_the_file)
{
	struct qt_tensor t;
	cr_assert_eq(qt_tensor_read_pb("/nonexistent/input_0.pb", &t, NULL, 0), QT_E_IO);
	expect_msg("/nonexistent/input_0.pb", NULL);
	cr_assert_null(t.data);
	/* A model is not a tensor: it parses as protobuf but makes no sense. */
	cr_assert_neq(qt_tensor_read_pb(CONV_MODEL, &t, NULL, 0), QT_OK);
	expect_msg(CONV_MODEL, NULL);
	cr_assert_null(t.data);
	qt_tensor_free(&t);
}

Test(tensor_pb, write_read_roundtrip_every_dtype)
{
	const enum qt_dtype dts[] = {QT_DTYPE_F32, QT_DTYPE_F16, QT_DTYPE_F64, QT_DTYPE_I64, QT_DTYPE_I32, QT_DTYPE_I16,
				     QT_DTYPE_I8,  QT_DTYPE_U8,  QT_DTYPE_U16, QT_DTYPE_U32, QT_DTYPE_U64, QT_DTYPE_BOOL};
	char dir[] = "/tmp/qt_pb_XXXXXX";
	cr_assert(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof path, "%s/t.pb", dir);
	uint64_t seed = 42;
	for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
		struct qt_tensor t = {0}, r;
		const int64_t dims[3] = {2, 3, (int64_t)k + 1};
		cr_assert_eq(qt_tensor_alloc(&t, dts[k], 3, dims), QT_OK);
		for (size_t i = 0; i < t.nbytes; i++)
			((uint8_t *)t.data)[i] = dts[k] == QT_DTYPE_BOOL ? (uint8_t)(rng_next(&seed) & 1)
									 : (uint8_t)rng_next(&seed);
		cr_assert_eq(qt_tensor_write_pb(path, &t, "t_name"), QT_OK, "%s", qt_error_msg());
		char name[8];
		cr_assert_eq(qt_tensor_read_pb(path, &r, name, sizeof name), QT_OK, "%s", qt_error_msg());
		cr_assert_str_eq(name, "t_name"); /* exactly fits 8 bytes with the NUL */
		cr_assert_eq(r.dtype, dts[k], "seed 42, dtype %s", qt_dtype_name(dts[k]));
		cr_assert_eq(r.rank, 3);
		cr_assert_arr_eq(r.dims, dims, sizeof dims);
		cr_assert_eq(r.nbytes, t.nbytes);
		cr_assert_arr_eq(r.data, t.data, t.nbytes, "seed 42, dtype %s", qt_dtype_name(dts[k]));
		qt_tensor_free(&t);
		qt_tensor_free(&r);
	}
	/* Scalars and empty tensors too. */
	struct qt_tensor s = {0}, r;
	cr_assert_eq(qt_tensor_alloc(&s, QT_DTYPE_F32, 0, NULL), QT_OK);
	*(float *)s.data = 2.5f;
	cr_assert_eq(qt_tensor_write_pb(path, &s, NULL), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_tensor_read_pb(path, &r, NULL, 0), QT_OK, "%s", qt_error_msg());
	cr_assert(r.rank == 0 && *(float *)r.data == 2.5f);
	qt_tensor_free(&r);
	qt_tensor_free(&s);
	const int64_t z[2] = {0, 5};
	cr_assert_eq(qt_tensor_alloc(&s, QT_DTYPE_I8, 2, z), QT_OK);
	cr_assert_eq(qt_tensor_write_pb(path, &s, ""), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_tensor_read_pb(path, &r, NULL, 0), QT_OK, "%s", qt_error_msg());
	cr_assert(r.rank == 2 && r.dims[0] == 0 && r.dims[1] == 5 && r.nbytes == 0);
	qt_tensor_free(&r);
	qt_tensor_free(&s);

	/* Packed quantized types have no TensorProto encoding. */
	const int64_t d1[1] = {4};
	cr_assert_eq(qt_tensor_alloc(&s, QT_DTYPE_S4, 1, d1), QT_OK);
	cr_assert_eq(qt_tensor_write_pb(path, &s, "q"), QT_E_UNSUPPORTED);
	expect_msg(path, "int4", NULL);
	qt_tensor_free(&s);
	/* Unwritable folder: the message names the file, no temp file is left. */
	cr_assert_eq(qt_tensor_alloc(&s, QT_DTYPE_F32, 1, d1), QT_OK);
	cr_assert_eq(qt_tensor_write_pb("/nonexistent/x.pb", &s, "q"), QT_E_IO);
	expect_msg("/nonexistent/x.pb", NULL);
	qt_tensor_free(&s);

	char cmd[160];
	snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1 && rm -r %s", dir, dir);
	cr_assert_eq(system(cmd), 0, "temporary files left in %s", dir);
}

Test(tensor_pb, truncations_and_garbage)
{
	size_t len;
	uint8_t *buf = slurp(TD "/node/test_conv_with_strides_padding/test_data_set_0/input_0.pb", &len);
	struct qt_tensor t;
	for (size_t n = 0; n < len; n++) {
		enum qt_status st = qt_tensor_read_pb_mem(buf, n, "in.pb", &t, NULL, 0);
		cr_assert_neq(st, QT_OK, "prefix of %zu bytes loaded", n);
		expect_msg("in.pb", NULL);
		cr_assert_null(t.data);
	}
	cr_assert_eq(qt_tensor_read_pb_mem(buf, len, "in.pb", &t, NULL, 0), QT_OK, "%s", qt_error_msg());
	qt_tensor_free(&t);
	uint64_t seed = 7;
	for (int it = 0; it < 2000; it++) {
		size_t n = rng_next(&seed) % 64;
		uint8_t g[64];
		for (size_t i = 0; i < n; i++)
			g[i] = (uint8_t)rng_next(&seed);
		if (qt_tensor_read_pb_mem(g, n, "junk.pb", &t, NULL, 0) == QT_OK)
			qt_tensor_free(&t);
		else
			expect_msg("junk.pb", NULL);
	}
	free(buf);
}

/* Fuzz finding: an empty raw_data arrives as (NULL, 0) and was passed to memcpy. */
Test(tensor_pb, empty_raw_data_null_pointer)
{
	/* tests/regress/fuzz_tensorpb/empty_raw_data_null_memcpy.pb */
	static const uint8_t b[] = {0x08, 0x00, 0x08, 0x00, 0x10, 0x0a, 0x08, 0x00, 0x6a, 0x00, 0x6a, 0x00,
				    0x6a, 0x00, 0x6a, 0x00, 0x6a, 0x00, 0x6a, 0x00, 0x4a, 0x00, 0x6a, 0x00};
	struct qt_tensor t;
	cr_assert_eq(qt_tensor_read_pb_mem(b, sizeof b, "empty.pb", &t, NULL, 0), QT_OK, "%s", qt_error_msg());
	cr_assert(t.dtype == QT_DTYPE_F16 && t.rank == 3 && t.nbytes == 0 && t.data);
	qt_tensor_free(&t);
}

/* ---- synthetic models: initializers --------------------------------------------- */

/* One initializer per dtype, each in the typed field ONNX assigns it. */
Test(onnx_load, typed_field_initializers)
{
	Onnx__ModelProto *m = model_new(13);
	const int64_t d2[1] = {2}, d3[1] = {3};
	Onnx__TensorProto *t;

	t = add_init(m, tensor_new("f32", 1, 1, d2));
	t->n_float_data = 2;
	t->float_data = pnew(2 * sizeof(float));
	t->float_data[0] = 1.5f;
	t->float_data[1] = -2.0f;

	t = add_init(m, tensor_new("f64", 11, 1, d2));
	t->n_double_data = 2;
	t->double_data = pnew(2 * sizeof(double));
	t->double_data[0] = 1e300;
	t->double_data[1] = -0.25;

	t = add_init(m, tensor_new("i64", 7, 1, d2));
	t->n_int64_data = 2;
	t->int64_data = pnew(2 * sizeof(int64_t));
	t->int64_data[0] = INT64_MIN;
	t->int64_data[1] = 42;

	t = add_init(m, tensor_new("u64", 13, 1, d2));
	t->n_uint64_data = 2;
	t->uint64_data = pnew(2 * sizeof(uint64_t));
	t->uint64_data[0] = UINT64_MAX;
	t->uint64_data[1] = 1;

	t = add_init(m, tensor_new("u32", 12, 1, d2));
	t->n_uint64_data = 2;
	t->uint64_data = pnew(2 * sizeof(uint64_t));
	t->uint64_data[0] = UINT32_MAX;
	t->uint64_data[1] = 7;

	/* int32_data carries int32, int16, int8, uint16, uint8, bool and float16. */
	const struct {
		const char *name;
		int type;
		int32_t v[3];
	} narrow[] = {{"i32", 6, {INT32_MIN, 0, INT32_MAX}}, {"i16", 5, {-32768, 1, 32767}},
		      {"i8", 3, {-128, -1, 127}},            {"u16", 4, {0, 1, 65535}},
		      {"u8", 2, {0, 128, 255}},              {"b", 9, {0, 1, 5}},
		      {"f16", 10, {0x3c00, -16384, 0xffff}}};
	for (size_t k = 0; k < sizeof narrow / sizeof narrow[0]; k++) {
		t = add_init(m, tensor_new(narrow[k].name, narrow[k].type, 1, d3));
		t->n_int32_data = 3;
		t->int32_data = pnew(3 * sizeof(int32_t));
		memcpy(t->int32_data, narrow[k].v, sizeof narrow[k].v);
	}
	/* A scalar and an empty tensor without any data field. */
	t = add_init(m, tensor_new("scalar", 1, 0, NULL));
	t->n_float_data = 1;
	t->float_data = pnew(sizeof(float));
	t->float_data[0] = 3.0f;
	const int64_t dz[2] = {0, 4};
	add_init(m, tensor_new("empty", 1, 2, dz));
	add_output(m, "f32");

	struct qt_graph *g;
	cr_assert_eq(load(m, NULL, &g), QT_OK, "%s", qt_error_msg());
	const struct qt_tensor *x;
	x = val(g, "f32")->init;
	cr_assert(x->dtype == QT_DTYPE_F32 && ((float *)x->data)[0] == 1.5f && ((float *)x->data)[1] == -2.0f);
	x = val(g, "f64")->init;
	cr_assert(x->dtype == QT_DTYPE_F64 && ((double *)x->data)[0] == 1e300 && ((double *)x->data)[1] == -0.25);
	x = val(g, "i64")->init;
	cr_assert(x->dtype == QT_DTYPE_I64 && ((int64_t *)x->data)[0] == INT64_MIN && ((int64_t *)x->data)[1] == 42);
	x = val(g, "u64")->init;
	cr_assert(x->dtype == QT_DTYPE_U64 && ((uint64_t *)x->data)[0] == UINT64_MAX);
	x = val(g, "u32")->init;
	cr_assert(x->dtype == QT_DTYPE_U32 && x->nbytes == 8 && ((uint32_t *)x->data)[0] == UINT32_MAX &&
		  ((uint32_t *)x->data)[1] == 7);
	x = val(g, "i32")->init;
	cr_assert(x->dtype == QT_DTYPE_I32 && ((int32_t *)x->data)[0] == INT32_MIN && ((int32_t *)x->data)[2] == INT32_MAX);
	x = val(g, "i16")->init;
	cr_assert(x->dtype == QT_DTYPE_I16 && x->nbytes == 6 && ((int16_t *)x->data)[0] == -32768);
	x = val(g, "i8")->init;
	cr_assert(x->dtype == QT_DTYPE_I8 && x->nbytes == 3 && ((int8_t *)x->data)[0] == -128 &&
		  ((int8_t *)x->data)[1] == -1 && ((int8_t *)x->data)[2] == 127);
	x = val(g, "u16")->init;
	cr_assert(x->dtype == QT_DTYPE_U16 && ((uint16_t *)x->data)[2] == 65535);
	x = val(g, "u8")->init;
	cr_assert(x->dtype == QT_DTYPE_U8 && ((uint8_t *)x->data)[1] == 128 && ((uint8_t *)x->data)[2] == 255);
	x = val(g, "b")->init;
	cr_assert(x->dtype == QT_DTYPE_BOOL && x->nbytes == 3);
	cr_assert(((uint8_t *)x->data)[0] == 0 && ((uint8_t *)x->data)[1] == 1 && ((uint8_t *)x->data)[2] == 1);
	x = val(g, "f16")->init;
	cr_assert(x->dtype == QT_DTYPE_F16 && ((uint16_t *)x->data)[0] == 0x3c00 &&
		  ((uint16_t *)x->data)[1] == 0xc000 && ((uint16_t *)x->data)[2] == 0xffff);
	x = val(g, "scalar")->init;
	cr_assert(x->rank == 0 && x->nbytes == 4 && *(float *)x->data == 3.0f);
	x = val(g, "empty")->init;
	cr_assert(x->rank == 2 && x->dims[0] == 0 && x->nbytes == 0 && x->data);
	cr_assert_eq(val(g, "empty")->rank, 2);
	qt_graph_free(g);
}

Test(onnx_load, raw_data_initializer)
{
	Onnx__ModelProto *m = model_new(13);
	const int64_t d[2] = {2, 2};
	const int16_t v[4] = {-1, 2, -3, 4};
	set_raw(add_init(m, tensor_new("w", 5, 2, d)), v, sizeof v);
	const uint8_t bv[3] = {0, 7, 1};
	const int64_t d3[1] = {3};
	set_raw(add_init(m, tensor_new("b", 9, 1, d3)), bv, sizeof bv);
	add_output(m, "w");
	struct qt_graph *g;
	cr_assert_eq(load(m, NULL, &g), QT_OK, "%s", qt_error_msg());
	const struct qt_tensor *w = val(g, "w")->init;
	cr_assert(w->dtype == QT_DTYPE_I16 && w->nbytes == 8);
	cr_assert_arr_eq(w->data, v, sizeof v);
	/* bool bytes are normalised to 0/1 */
	const uint8_t bw[3] = {0, 1, 1};
	cr_assert_arr_eq(val(g, "b")->init->data, bw, 3);
	qt_graph_free(g);
}

/* Each malformed initializer is refused with its name in the message. */
Test(onnx_load, bad_initializers)
{
	const int64_t d2[1] = {2}, d3[1] = {3}, neg[2] = {2, -1};
	Onnx__ModelProto *m;
	Onnx__TensorProto *t;

	m = model_new(13);
	t = add_init(m, tensor_new("few", 1, 1, d3));
	t->n_float_data = 2;
	t->float_data = pnew(8);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"few\"", "float_data has 2 values");

	m = model_new(13);
	set_raw(add_init(m, tensor_new("short", 1, 1, d2)), "abcdefg", 7);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"short\"", "raw_data has 7 bytes");

	m = model_new(13);
	set_raw(add_init(m, tensor_new("long", 1, 1, d2)), "abcdefghi", 9);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"long\"", "raw_data has 9 bytes");

	m = model_new(13);
	t = add_init(m, tensor_new("wrongfield", 7, 1, d2));
	t->n_float_data = 2;
	t->float_data = pnew(8);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"wrongfield\"", "float_data");

	m = model_new(13);
	t = add_init(m, tensor_new("two", 1, 1, d2));
	t->n_float_data = 2;
	t->float_data = pnew(8);
	set_raw(t, "abcdefgh", 8);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"two\"", "more than one field");

	m = model_new(13);
	t = add_init(m, tensor_new("i8range", 3, 1, d2));
	t->n_int32_data = 2;
	t->int32_data = pnew(8);
	t->int32_data[1] = 128;
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"i8range\"", "out of range for int8");

	m = model_new(13);
	t = add_init(m, tensor_new("u32range", 12, 1, d2));
	t->n_uint64_data = 2;
	t->uint64_data = pnew(16);
	t->uint64_data[0] = (uint64_t)1 << 32;
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"u32range\"", "uint32");

	m = model_new(13);
	t = add_init(m, tensor_new("s", 8, 1, d2));
	t->n_string_data = 2;
	t->string_data = pnew(2 * sizeof(ProtobufCBinaryData));
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "tensor \"s\": string tensors are not supported");

	m = model_new(13);
	add_init(m, tensor_new("negdim", 1, 2, neg));
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"negdim\"", "negative dimension");

	m = model_new(13);
	const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	set_raw(add_init(m, tensor_new("rank9", 1, 9, nine)), "abcd", 4);
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "tensor \"rank9\"", "rank 9");

	m = model_new(13);
	add_init(m, tensor_new("dt99", 99, 1, d2));
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"dt99\"", "unknown data type 99");

	m = model_new(13);
	set_raw(add_init(m, tensor_new("bf", 16, 1, d2)), "abcd", 4);
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "tensor \"bf\"", "bfloat16");

	m = model_new(13);
	add_init(m, tensor_new("nodata", 1, 1, d2));
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"nodata\"", "no data");

	/* 2^62 * 4 bytes, and a product that overflows int64 next to a zero dim. */
	m = model_new(13);
	const int64_t huge[2] = {(int64_t)1 << 31, (int64_t)1 << 31};
	add_init(m, tensor_new("huge", 1, 2, huge));
	EXPECT_FAIL(m, NULL, QT_E_NOMEM, "tensor \"huge\"", "limit");
	m = model_new(13);
	const int64_t ovf[3] = {0, INT64_MAX, INT64_MAX};
	add_init(m, tensor_new("ovf", 1, 3, ovf));
	EXPECT_FAIL(m, NULL, QT_E_NOMEM, "tensor \"ovf\"");

	m = model_new(13);
	set_raw(add_init(m, tensor_new("dup", 1, 1, d2)), "abcdefgh", 8);
	set_raw(add_init(m, tensor_new("dup", 1, 1, d2)), "abcdefgh", 8);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "tensor \"dup\"", "defined twice");

	m = model_new(13);
	set_raw(add_init(m, tensor_new("", 1, 1, d2)), "abcdefgh", 8);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "initializer #0 has no name");

	m = model_new(13);
	t = add_init(m, tensor_new("seg", 1, 1, d2));
	t->segment = pnew(sizeof *t->segment);
	onnx__tensor_proto__segment__init(t->segment);
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "tensor \"seg\"", "segmented");
}

/* ---- Constant folding --------------------------------------------------------------- */

Test(onnx_load, constant_nodes_fold_into_initializers)
{
	Onnx__ModelProto *m = model_new(13);
	Onnx__NodeProto *n;
	Onnx__AttributeProto *a;
	n = add_node(m, "Constant", "c_f", "", "f");
	a = add_attr(n, "value_float", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = 0.5f;
	n = add_node(m, "Constant", "c_fs", "", "fs");
	a = add_attr(n, "value_floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
	a->n_floats = 3;
	a->floats = pnew(3 * sizeof(float));
	a->floats[2] = 9.0f;
	n = add_node(m, "Constant", "c_i", "", "i");
	a = add_attr(n, "value_int", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = -7;
	n = add_node(m, "Constant", "c_is", "", "is");
	a = add_attr(n, "value_ints", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	a->n_ints = 2;
	a->ints = pnew(2 * sizeof(int64_t));
	a->ints[0] = 1;
	a->ints[1] = -1;
	n = add_node(m, "Constant", "c_t", "", "t");
	a = add_attr(n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	const int64_t d[2] = {1, 2};
	a->t = tensor_new("", 7, 2, d);
	a->t->n_int64_data = 2;
	a->t->int64_data = pnew(16);
	a->t->int64_data[0] = 5;
	a->t->int64_data[1] = 6;
	/* A Constant after its consumer in file order is still folded. */
	add_input(m, "x", 1, (const int64_t[]){3});
	add_node(m, "Add", "add", "x,late", "y");
	n = add_node(m, "Constant", "c_late", "", "late");
	a = add_attr(n, "value_floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
	a->n_floats = 3;
	a->floats = pnew(3 * sizeof(float));
	add_node(m, "Reshape", "r", "y,is", "z");
	add_output(m, "z");
	add_output(m, "f");
	add_output(m, "fs");
	add_output(m, "i");
	add_output(m, "t");

	struct qt_graph *g;
	cr_assert_eq(load(m, NULL, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(g->n_nodes, 2);
	cr_assert_str_eq(g->nodes[0].op_type, "Add");
	cr_assert_str_eq(g->nodes[1].op_type, "Reshape");
	const struct qt_value *v = val(g, "f");
	cr_assert(v->init && v->init->dtype == QT_DTYPE_F32 && v->init->rank == 0 && *(float *)v->init->data == 0.5f);
	cr_assert(v->rank == 0 && v->dtype == QT_DTYPE_F32);
	v = val(g, "fs");
	cr_assert(v->init->rank == 1 && v->init->dims[0] == 3 && ((float *)v->init->data)[2] == 9.0f);
	v = val(g, "i");
	cr_assert(v->init->dtype == QT_DTYPE_I64 && v->init->rank == 0 && *(int64_t *)v->init->data == -7);
	v = val(g, "is");
	cr_assert(v->init->dims[0] == 2 && ((int64_t *)v->init->data)[1] == -1);
	cr_assert_eq(v->n_consumers, 1);
	v = val(g, "t");
	cr_assert(v->init->rank == 2 && v->init->dims[1] == 2 && ((int64_t *)v->init->data)[1] == 6);
	cr_assert(val(g, "late")->init);
	qt_graph_free(g);
}

Test(onnx_load, bad_constants)
{
	Onnx__ModelProto *m;
	Onnx__NodeProto *n;

	m = model_new(13);
	n = add_node(m, "Constant", "cs", "", "s");
	add_attr(n, "sparse_value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR);
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "node \"cs\" (Constant)", "sparse_value");

	m = model_new(13);
	n = add_node(m, "Constant", "cstr", "", "s");
	Onnx__AttributeProto *a = add_attr(n, "value_string", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	a->has_s = 1;
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "node \"cstr\" (Constant)", "value_string");

	m = model_new(13);
	add_node(m, "Constant", "none", "", "s");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"none\" (Constant)", "exactly one");

	m = model_new(13);
	n = add_node(m, "Constant", "mistyped", "", "s");
	add_attr(n, "value_float", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"mistyped\" (Constant)", "value_float");

	/* A Constant whose tensor is bad names the node and its output. */
	m = model_new(13);
	n = add_node(m, "Constant", "badt", "", "out");
	a = add_attr(n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = tensor_new("", 8, 0, NULL);
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "node \"badt\" (Constant): tensor \"out\": string tensors");

	/* Two definitions of one name: initializer and Constant. */
	m = model_new(13);
	set_raw(add_init(m, tensor_new("w", 1, 0, NULL)), "abcd", 4);
	n = add_node(m, "Constant", "cw", "", "w");
	a = add_attr(n, "value_int", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"cw\" (Constant)", "\"w\" is already defined");
}

/* ---- nodes, attributes, values --------------------------------------------------------- */

Test(onnx_load, attributes_of_every_type)
{
	Onnx__ModelProto *m = model_new(13);
	add_input(m, "x", 2, (const int64_t[]){-1, 4});
	Onnx__NodeProto *n = add_node(m, "Custom", "c", "x,,x", "y,");
	n->domain = pstr("com.example");
	Onnx__AttributeProto *a;
	a = add_attr(n, "f", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = 1.25f;
	a = add_attr(n, "i", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = INT64_MIN;
	a = add_attr(n, "s", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	a->has_s = 1;
	a->s.len = 4;
	a->s.data = pnew(4);
	memcpy(a->s.data, "a\0b\xff", 4);
	a = add_attr(n, "t", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = tensor_new("", 3, 1, (const int64_t[]){2});
	set_raw(a->t, "\x80\x7f", 2);
	a = add_attr(n, "fs", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
	a->n_floats = 2;
	a->floats = pnew(8);
	a->floats[1] = -1.0f;
	a = add_attr(n, "is", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	a->n_ints = 0;
	a = add_attr(n, "ss", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
	a->n_strings = 2;
	a->strings = pnew(2 * sizeof(ProtobufCBinaryData));
	a->strings[0].len = 3;
	a->strings[0].data = (uint8_t *)pstr("abc");
	a = add_attr(n, "g", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
	a->g = pnew(sizeof *a->g);
	onnx__graph_proto__init(a->g);
	/* IR-version-1 style: no type field, inferred from the payload. */
	a = add_attr(n, "untyped", 0);
	a->has_type = 0;
	a->has_i = 1;
	a->i = 3;
	add_output(m, "y");

	struct qt_graph *g;
	cr_assert_eq(load(m, NULL, &g), QT_OK, "%s", qt_error_msg());
	const struct qt_node *nd = &g->nodes[0];
	cr_assert_str_eq(nd->domain, "com.example");
	cr_assert_eq(nd->n_inputs, 3);
	cr_assert_eq(nd->inputs[1], -1);
	cr_assert_eq(nd->inputs[0], nd->inputs[2]);
	cr_assert_eq(nd->n_outputs, 2);
	cr_assert_eq(nd->outputs[1], -1);
	cr_assert_eq(val(g, "x")->n_consumers, 2);
	cr_assert_eq(nd->n_attrs, 9);
	cr_assert_eq(qt_node_attr_float(nd, "f", 0), 1.25f);
	cr_assert_eq(qt_node_attr_int(nd, "i", 0), INT64_MIN);
	const struct qt_attr *at = qt_node_attr(nd, "s");
	cr_assert(at->type == QT_ATTR_STRING && at->s_len == 4 && memcmp(at->s, "a\0b\xff", 5) == 0);
	at = qt_node_attr(nd, "t");
	cr_assert(at->type == QT_ATTR_TENSOR && at->t->dtype == QT_DTYPE_I8 && ((int8_t *)at->t->data)[0] == -128);
	const float *fv;
	cr_assert_eq(qt_node_attr_floats(nd, "fs", &fv), 2);
	cr_assert_eq(fv[1], -1.0f);
	const int64_t *iv;
	cr_assert_eq(qt_node_attr_ints(nd, "is", &iv), 0);
	cr_assert_eq(qt_node_attr(nd, "is")->type, QT_ATTR_INTS);
	at = qt_node_attr(nd, "ss");
	cr_assert(at->type == QT_ATTR_STRINGS && at->n == 2 && !strcmp(at->strings[0], "abc") && !strcmp(at->strings[1], ""));
	cr_assert_eq(qt_node_attr(nd, "g")->type, QT_ATTR_GRAPH);
	cr_assert_eq(qt_node_attr_int(nd, "untyped", 0), 3);
	/* Symbolic dims: -1 with the name kept. */
	const struct qt_value *x = val(g, "x");
	cr_assert(x->rank == 2 && x->dims[0] == -1 && x->dims[1] == 4);
	cr_assert_str_eq(x->dim_params[0], "N");
	cr_assert_null(x->dim_params[1]);
	qt_graph_free(g);
}

Test(onnx_load, value_info_and_opsets)
{
	Onnx__ModelProto *m = model_new(0);
	const char *doms[3] = {"ai.onnx", "com.microsoft", "ai.onnx.ml"};
	const int vers[3] = {17, 1, 3};
	for (int i = 0; i < 3; i++) {
		Onnx__OperatorSetIdProto *op = pnew(sizeof *op);
		onnx__operator_set_id_proto__init(op);
		op->domain = pstr(doms[i]);
		op->has_version = 1;
		op->version = vers[i];
		m->opset_import[m->n_opset_import++] = op;
	}
	add_input(m, "x", -1, NULL);
	add_node(m, "Relu", "r1", "x", "h");
	add_node(m, "Relu", "r2", "h", "y");
	add_output(m, "y");
	m->graph->value_info[m->graph->n_value_info++] = vinfo("h", 1, 3, (const int64_t[]){1, -1, 8});
	m->graph->value_info[m->graph->n_value_info++] = vinfo("unused", 1, 1, (const int64_t[]){1});
	struct qt_graph *g;
	cr_assert_eq(load(m, NULL, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(g->opset, 17);
	cr_assert_eq(g->n_opsets, 3);
	cr_assert_str_eq(g->opset_domains[0], "");
	cr_assert_str_eq(g->opset_domains[1], "com.microsoft");
	cr_assert_eq(g->opset_versions[2], 3);
	cr_assert_eq(val(g, "x")->rank, -1);
	cr_assert_eq(val(g, "x")->dtype, QT_DTYPE_F32);
	const struct qt_value *h = val(g, "h");
	cr_assert(h->rank == 3 && h->dims[2] == 8 && h->dims[1] == -1);
	cr_assert_eq(qt_graph_find_value(g, "unused"), -1);
	qt_graph_free(g);
}

Test(onnx_load, bad_models)
{
	Onnx__ModelProto *m;

	m = model_new(0);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "opset_import is empty");

	m = model_new(0);
	Onnx__OperatorSetIdProto *op = pnew(sizeof *op);
	onnx__operator_set_id_proto__init(op);
	op->domain = pstr("ai.onnx.ml");
	op->has_version = 1;
	op->version = 3;
	m->opset_import[m->n_opset_import++] = op;
	/* Only another domain imported (and no default-domain node): a model
	 * qtool cannot run, not a broken one. */
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "qtool does not implement");

	m = model_new(13);
	m->opset_import[m->n_opset_import++] = m->opset_import[0];
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "imported twice");

	m = model_new(13);
	m->graph = NULL;
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "not an ONNX model");

	m = model_new(13);
	m->has_ir_version = 0;
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "not an ONNX model");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	Onnx__NodeProto *n = add_node(m, "Relu", "dupattr", "x", "y");
	add_attr(n, "a", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	add_attr(n, "a", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"dupattr\" (Relu)", "\"a\" is given twice");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	n = add_node(m, "Relu", "many", "x", "y");
	n->attribute = pnew(1025 * sizeof(void *));
	for (int i = 0; i < 1025; i++) {
		char nm[16];
		snprintf(nm, sizeof nm, "a%d", i);
		add_attr(n, nm, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	}
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"many\" (Relu)", "1025 attributes");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	n = add_node(m, "Relu", "untyped", "x", "y");
	add_attr(n, "nothing", 0)->has_type = 0;
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"untyped\" (Relu)", "\"nothing\" has no type");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_node(m, "", "noop", "x", "y");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"noop\" ()", "no op_type");

	m = model_new(13);
	m->graph->input[m->graph->n_input++] = vinfo("x", 16, 1, (const int64_t[]){2});
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "graph input \"x\"", "element type 16");

	m = model_new(13);
	add_input(m, "x", 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
	EXPECT_FAIL(m, NULL, QT_E_UNSUPPORTED, "graph input \"x\"", "rank 9");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_input(m, "x", 1, (const int64_t[]){2});
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "graph input \"x\" is listed twice");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_output(m, "x");
	add_output(m, "x");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "graph output \"x\" is listed twice");
}

Test(onnx_load, structural_errors)
{
	Onnx__ModelProto *m;

	/* cycle: a(x, z) -> y; b(y) -> z */
	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_node(m, "Add", "a", "x,z", "y");
	add_node(m, "Relu", "b", "y", "z");
	add_output(m, "y");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "cycle", "(Add)");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_node(m, "Add", "a", "x,nope", "y");
	add_output(m, "y");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"a\" (Add)", "\"nope\"");

	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_node(m, "Relu", "r1", "x", "y");
	add_node(m, "Relu", "r2", "x", "y");
	add_output(m, "y");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"r2\" (Relu)", "\"y\" is already defined");

	/* A node overwriting a graph input or an initializer. */
	m = model_new(13);
	add_input(m, "x", 1, (const int64_t[]){2});
	add_node(m, "Relu", "over", "x", "x");
	add_output(m, "x");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node \"over\" (Relu)", "already defined");
	m = model_new(13);
	set_raw(add_init(m, tensor_new("w", 1, 0, NULL)), "abcd", 4);
	add_node(m, "Identity", "", "w", "w");
	add_output(m, "w");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "node #0 (Identity)", "already defined");

	m = model_new(13);
	add_output(m, "ghost");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "\"ghost\" is never produced");
}

/* Sub-graphs nest three messages per level; a deep chain is refused before protobuf-c recurses. */
static Onnx__GraphProto *nest(int levels)
{
	Onnx__GraphProto *g = pnew(sizeof *g);
	onnx__graph_proto__init(g);
	if (levels == 0)
		return g;
	g->node = pnew(sizeof(void *));
	Onnx__NodeProto *n = pnew(sizeof *n);
	onnx__node_proto__init(n);
	n->op_type = pstr("If");
	n->attribute = pnew(sizeof(void *));
	Onnx__AttributeProto *a = pnew(sizeof *a);
	onnx__attribute_proto__init(a);
	a->name = pstr("then_branch");
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
	a->g = nest(levels - 1);
	n->attribute[n->n_attribute++] = a;
	g->node[g->n_node++] = n;
	return g;
}

Test(onnx_load, nesting_depth)
{
	Onnx__ModelProto *m = model_new(13);
	add_input(m, "c", 0, NULL);
	Onnx__NodeProto *n = add_node(m, "If", "if", "c", "y");
	Onnx__AttributeProto *a = add_attr(n, "then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
	a->g = nest(10);
	add_output(m, "y");
	struct qt_graph *g;
	cr_assert_eq(load(m, NULL, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_node_attr(&g->nodes[0], "then_branch")->type, QT_ATTR_GRAPH);
	qt_graph_free(g);

	m = model_new(13);
	add_input(m, "c", 0, NULL);
	n = add_node(m, "If", "if", "c", "y");
	a = add_attr(n, "then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
	a->g = nest(40);
	add_output(m, "y");
	EXPECT_FAIL(m, NULL, QT_E_FORMAT, "nested more than");
}

/* ---- external data -------------------------------------------------------------------------- */

static void add_ext(Onnx__TensorProto *t, const char *key, const char *value)
{
	if (!t->external_data)
		t->external_data = pnew(8 * sizeof(void *));
	Onnx__StringStringEntryProto *e = pnew(sizeof *e);
	onnx__string_string_entry_proto__init(e);
	e->key = pstr(key);
	e->value = pstr(value);
	t->external_data[t->n_external_data++] = e;
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

/* A model with initializer "w" (float32 [4]) stored at `loc`; offset/length NULL to omit. */
static Onnx__ModelProto *ext_model(const char *loc, const char *off, const char *len)
{
	Onnx__ModelProto *m = model_new(13);
	Onnx__TensorProto *t = add_init(m, tensor_new("w", 1, 1, (const int64_t[]){4}));
	add_ext(t, "location", loc);
	if (off)
		add_ext(t, "offset", off);
	if (len)
		add_ext(t, "length", len);
	add_output(m, "w");
	return m;
}

/* Write the packed model to dir/model.onnx and load it from the file. */
static enum qt_status load_file(Onnx__ModelProto *m, const char *dir, struct qt_graph **g)
{
	size_t len;
	uint8_t *buf = pack(m, &len);
	pool_free();
	char path[256];
	snprintf(path, sizeof path, "%s/model.onnx", dir);
	spit(path, buf, len);
	free(buf);
	return qt_graph_load_onnx(path, g);
}

Test(onnx_load, external_data)
{
	char dir[] = "/tmp/qt_ext_XXXXXX";
	cr_assert(mkdtemp(dir));
	char p[256];
	snprintf(p, sizeof p, "%s/sub", dir);
	cr_assert_eq(mkdir(p, 0755), 0);
	/* 8 bytes of padding, then 4 floats, then 4 more */
	float data[12];
	for (int i = 0; i < 12; i++)
		data[i] = (float)i - 2.0f;
	snprintf(p, sizeof p, "%s/sub/w.bin", dir);
	spit(p, data, sizeof data);
	snprintf(p, sizeof p, "%s/whole.bin", dir);
	spit(p, data + 2, 16);

	struct qt_graph *g;
	cr_assert_eq(load_file(ext_model("sub/w.bin", "8", "16"), dir, &g), QT_OK, "%s", qt_error_msg());
	const struct qt_tensor *w = val(g, "w")->init;
	cr_assert_eq(w->nbytes, 16u);
	cr_assert_arr_eq(w->data, data + 2, 16);
	qt_graph_free(g);
	/* No offset and no length: the whole file. "./" is harmless. */
	cr_assert_eq(load_file(ext_model("./whole.bin", NULL, NULL), dir, &g), QT_OK, "%s", qt_error_msg());
	cr_assert_arr_eq(val(g, "w")->init->data, data + 2, 16);
	qt_graph_free(g);

	/* Refusals, each naming the model file, the tensor and the path. */
	char label[256];
	snprintf(label, sizeof label, "%s/model.onnx", dir);
	struct {
		const char *loc, *off, *len;
		enum qt_status st;
		const char *needle;
	} bad[] = {
		{"/etc/passwd", NULL, NULL, QT_E_FORMAT, "is absolute"},
		{"../w.bin", NULL, NULL, QT_E_FORMAT, "\"..\""},
		{"sub/../sub/w.bin", "8", "16", QT_E_FORMAT, "\"..\""},
		{"sub/..", NULL, NULL, QT_E_FORMAT, "\"..\""},
		{"sub/w.bin", "49", NULL, QT_E_FORMAT, "offset 49 is beyond the file's 48 bytes"},
		{"sub/w.bin", "40", "16", QT_E_FORMAT, "offset 40 + length 16 is beyond"},
		{"sub/w.bin", "0", "18446744073709551615", QT_E_FORMAT, "is beyond"},
		{"sub/w.bin", "0", "12", QT_E_FORMAT, "has 12 bytes, the shape needs 16"},
		{"sub/w.bin", NULL, NULL, QT_E_FORMAT, "has 48 bytes"},
		{"sub/w.bin", "-8", "16", QT_E_FORMAT, "offset \"-8\""},
		{"sub/w.bin", "8", "1e3", QT_E_FORMAT, "length \"1e3\""},
		{"sub/missing.bin", NULL, NULL, QT_E_IO, "cannot open"},
		{"sub", NULL, NULL, QT_E_IO, "not a readable regular file"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		g = (struct qt_graph *)1;
		enum qt_status st = load_file(ext_model(bad[k].loc, bad[k].off, bad[k].len), dir, &g);
		cr_assert_eq(st, bad[k].st, "case %zu (%s): %s", k, bad[k].loc, qt_error_msg());
		cr_assert_null(g);
		expect_msg(label, "tensor \"w\"", bad[k].loc, bad[k].needle, NULL);
	}

	/* From memory (dir NULL) external data cannot be resolved. */
	EXPECT_FAIL(ext_model("sub/w.bin", "8", "16"), NULL, QT_E_UNSUPPORTED, "tensor \"w\"", "sub/w.bin");
	/* Inline data next to an external location is ambiguous. */
	Onnx__ModelProto *m = ext_model("sub/w.bin", "8", "16");
	set_raw(m->graph->initializer[0], data, 16);
	EXPECT_FAIL(m, dir, QT_E_FORMAT, "tensor \"w\"", "both external data and raw_data");
	m = ext_model("", NULL, NULL);
	EXPECT_FAIL(m, dir, QT_E_FORMAT, "tensor \"w\"", "no location");

	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -r %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* ---- hostile bytes ----------------------------------------------------------------------------- */

/* Every prefix of a small real model fails cleanly (or loads: protobuf has no end marker). */
Test(onnx_load, every_truncation_fails_cleanly)
{
	size_t len;
	uint8_t *buf = slurp(TORCH_CONV, &len);
	int loaded = 0;
	for (size_t n = 0; n < len; n++) {
		/* a copy of exactly n bytes, so ASan sees any read past the end */
		uint8_t *c = malloc(n ? n : 1);
		memcpy(c, buf, n);
		struct qt_graph *g = (struct qt_graph *)1;
		enum qt_status st = qt_graph_load_onnx_mem(c, n, NULL, "cut.onnx", &g);
		if (st == QT_OK) {
			loaded++;
			qt_graph_free(g);
		} else {
			cr_assert_null(g);
			expect_msg("cut.onnx", NULL);
		}
		free(c);
	}
	/* The empty prefix and the first few are plainly refused. */
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx_mem(buf, 0, NULL, "cut.onnx", &g), QT_E_FORMAT);
	expect_msg("cut.onnx", "truncated or not an ONNX model", NULL);
	cr_assert_eq(qt_graph_load_onnx_mem(buf, 20, NULL, "cut.onnx", &g), QT_E_FORMAT);
	expect_msg("cut.onnx", "truncated or not an ONNX model", NULL);
	cr_assert(loaded < 5, "%d truncated prefixes loaded", loaded);
	free(buf);
}

Test(onnx_load, garbage_and_mutations)
{
	size_t len;
	uint8_t *model = slurp(TORCH_CONV, &len);
	uint64_t seed = 0x5eed;
	uint8_t *buf = malloc(len + 64);
	for (int it = 0; it < 3000; it++) {
		size_t n;
		if (it < 1000) { /* pure noise */
			n = rng_next(&seed) % 256;
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)rng_next(&seed);
		} else { /* the real model with a few bytes flipped */
			n = len;
			memcpy(buf, model, len);
			int flips = 1 + (int)(rng_next(&seed) % 4);
			for (int f = 0; f < flips; f++)
				buf[rng_next(&seed) % len] = (uint8_t)rng_next(&seed);
		}
		struct qt_graph *g = (struct qt_graph *)1;
		enum qt_status st = qt_graph_load_onnx_mem(buf, n, NULL, "junk.onnx", &g);
		if (st == QT_OK)
			qt_graph_free(g);
		else {
			cr_assert_null(g, "iteration %d, seed 0x5eed", it);
			expect_msg("junk.onnx", NULL);
		}
	}
	free(buf);
	free(model);
}

Test(onnx_load, size_limit)
{
	static const uint8_t b[4];
	struct qt_graph *g = (struct qt_graph *)1;
	/* The length is refused before the buffer is touched. */
	cr_assert_eq(qt_graph_load_onnx_mem(b, ((size_t)2 << 30) + 1, NULL, "big.onnx", &g), QT_E_FORMAT);
	cr_assert_null(g);
	expect_msg("big.onnx", "2 GiB", NULL);
}

/*
 * A TensorProto that claims 4 GB of external data without saying where it
 * is (13 bytes, found by fuzz_tensorpb) is refused before anything is
 * allocated: under a 1 GiB address-space limit the old order (allocate, then
 * read) failed with "out of memory" instead of naming the missing location.
 * (ASan reserves terabytes of address space, so the limit is release-only.)
 */
Test(tensor_pb, external_data_checked_before_allocating)
{
	static const uint8_t pb[] = {0x08, 0xf9, 0xfa, 0xe5, 0x28, 0x08, 0x30, 0x70, 0x01, 0x10, 0x5b, 0x10, 0x02};
#if !defined(__SANITIZE_ADDRESS__)
	struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
	cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
#endif
	struct qt_tensor t;
	char name[64];
	cr_assert_neq(qt_tensor_read_pb_mem(pb, sizeof pb, "big.pb", &t, name, sizeof name), QT_OK);
	cr_assert(strstr(qt_error_msg(), "no location") != NULL, "%s", qt_error_msg());
	cr_assert(t.data == NULL);
}
