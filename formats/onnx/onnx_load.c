/*
 * ONNX model loader: ModelProto bytes -> qt_graph (see qtool/graph.h).
 *
 * protobuf-c unpacks into a scratch arena (onnx_int.h); we copy names,
 * shapes, attributes and constant data into the graph's arena and drop the
 * scratch, so the IR never points into protobuf memory. Constant nodes are
 * folded into initializers here, so no executor ever sees one.
 *
 * Every message is built without the file label and prefixed with it once,
 * on the way out: `model.onnx: node "conv1" (Conv): ...`.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"
#include "onnx_int.h"
#include "qtool/graph.h"

/* Per-node limits; real models stay far below, garbage does not. */
#define MAX_NODE_ATTRS 1024
#define MAX_NODE_IO (1 << 20)
#define MAX_OPSETS 1024

struct loader {
	struct qt_graph *g;
	const char *dir; /* folder for external data, or NULL to refuse it */
};

static inline const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static enum qt_status oom(void)
{
	return qt_error(QT_E_NOMEM, "out of memory");
}

/* The same wording as qt_node_label; unnamed nodes are numbered in file order. */
static const char *node_label(char *buf, size_t cap, size_t idx, const Onnx__NodeProto *np)
{
	const char *name = str_or_empty(np->name), *op = str_or_empty(np->op_type);
	if (*name)
		snprintf(buf, cap, "node \"%s\" (%s)", name, op);
	else
		snprintf(buf, cap, "node #%zu (%s)", idx, op);
	return buf;
}

static void set_type_from_tensor(struct qt_value *v, const struct qt_tensor *t)
{
	v->dtype = t->dtype;
	v->rank = t->rank;
	for (int i = 0; i < QT_MAX_RANK; i++) {
		v->dims[i] = i < t->rank ? t->dims[i] : 0;
		v->dim_params[i] = NULL;
	}
}

/*
 * Record a ValueInfoProto's element type and shape on value vi, unless the
 * value already has them (constants know their type; the first declaration
 * wins over later value_info). Non-tensor types (sequences, maps) are left
 * undeclared for the runtime to refuse. `kind` names the list in messages.
 */
static enum qt_status set_type(struct loader *L, int vi, const Onnx__ValueInfoProto *info, const char *kind)
{
	struct qt_value *v = &L->g->values[vi];
	if (v->init || v->dtype != QT_DTYPE_UNDEFINED || v->rank >= 0)
		return QT_OK;
	const Onnx__TypeProto *tp = info->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
		return QT_OK;
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	enum qt_dtype dt = QT_DTYPE_UNDEFINED;
	if (tt->has_elem_type && tt->elem_type != 0) {
		dt = qt_dtype_from_onnx(tt->elem_type);
		if (dt == QT_DTYPE_UNDEFINED)
			return qt_error(QT_E_UNSUPPORTED, "%s \"%s\": element type %d is not supported", kind, v->name,
					(int)tt->elem_type);
	}
	if (tt->shape) {
		const Onnx__TensorShapeProto *sp = tt->shape;
		if (sp->n_dim > QT_MAX_RANK)
			return qt_error(QT_E_UNSUPPORTED, "%s \"%s\": rank %zu is more than the maximum of %d", kind,
					v->name, sp->n_dim, QT_MAX_RANK);
		/* Known dims are bounded like tensor shapes, so later shape
		 * arithmetic cannot overflow. Negative dim_values (some exporters
		 * write -1) are read as unknown. */
		uint64_t prod = 1;
		for (size_t i = 0; i < sp->n_dim; i++) {
			const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];
			v->dims[i] = -1;
			v->dim_params[i] = NULL;
			if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0) {
				if (d->dim_value > 0 && prod > QT_TENSOR_MAX_BYTES / (uint64_t)d->dim_value)
					return qt_error(QT_E_FORMAT, "%s \"%s\": declared shape has more than %zu elements",
							kind, v->name, QT_TENSOR_MAX_BYTES);
				if (d->dim_value > 0)
					prod *= (uint64_t)d->dim_value;
				v->dims[i] = d->dim_value;
			} else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
				   d->dim_param[0]) {
				v->dim_params[i] = qt_graph_strdup(L->g, d->dim_param);
				if (!v->dim_params[i])
					return oom();
			}
		}
		v->rank = (int)sp->n_dim;
	}
	v->dtype = dt;
	return QT_OK;
}

/* ONNX attribute type, inferred from the payload for models that predate the type field. */
static int attr_type_of(const Onnx__AttributeProto *ap)
{
	if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
		return (int)ap->type;
	if (ap->has_f)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	if (ap->has_i)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	if (ap->has_s)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
	if (ap->t)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
	if (ap->g)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
	if (ap->n_floats)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
	if (ap->n_ints)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	if (ap->n_strings)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
	if (ap->n_graphs)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS;
	return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static const char *attr_type_name(int type)
{
	static const char *names[] = {"UNDEFINED", "FLOAT",   "INT",    "STRING",        "TENSOR",
				      "GRAPH",     "FLOATS",  "INTS",   "STRINGS",       "TENSORS",
				      "GRAPHS",    "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
	return type >= 0 && type < (int)(sizeof names / sizeof names[0]) ? names[type] : "unknown";
}

/* Copy n bytes into the arena with a NUL after them (attribute strings are bytes). */
static const char *dup_bytes(struct qt_graph *g, const ProtobufCBinaryData *b)
{
	return qt_arena_strndup(g->arena, b->data ? (const char *)b->data : "", b->data ? b->len : 0);
}

/*
 * Copy one attribute into a (zeroed, in the graph arena). Graph-valued
 * attributes are recorded by type only; tensors-, sparse- and type-valued
 * ones by name only (QT_ATTR_UNDEFINED), since no qtool op reads them.
 */
static enum qt_status convert_attr(struct loader *L, const Onnx__AttributeProto *ap, struct qt_attr *a,
				   const char *lbl, size_t idx)
{
	struct qt_graph *g = L->g;
	const char *name = str_or_empty(ap->name);
	if (!*name)
		return qt_error(QT_E_FORMAT, "%s: attribute #%zu has no name", lbl, idx);
	a->name = qt_graph_strdup(g, name);
	if (!a->name)
		return oom();
	int type = attr_type_of(ap);
	switch (type) {
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
		a->type = QT_ATTR_FLOAT;
		a->f = ap->f;
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
		a->type = QT_ATTR_INT;
		a->i = ap->i;
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
		a->type = QT_ATTR_STRING;
		a->s = dup_bytes(g, &ap->s);
		a->s_len = ap->s.data ? ap->s.len : 0;
		if (!a->s)
			return oom();
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
		if (!ap->t)
			return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" is of type TENSOR but holds none", lbl, name);
		char what[512];
		snprintf(what, sizeof what, "%s: attribute \"%s\"", lbl, name);
		a->type = QT_ATTR_TENSOR;
		a->t = qt_graph_alloc(g, sizeof *a->t);
		if (!a->t)
			return oom();
		return qt_onnx_tensor_convert(ap->t, what, L->dir, g->arena, a->t);
	}
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
		if (ap->n_floats > INT_MAX)
			return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" has too many values", lbl, name);
		a->type = QT_ATTR_FLOATS;
		a->n = (int)ap->n_floats;
		a->floats = qt_graph_alloc(g, ap->n_floats * sizeof(float));
		if (!a->floats)
			return oom();
		if (ap->n_floats)
			memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
		if (ap->n_ints > INT_MAX)
			return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" has too many values", lbl, name);
		a->type = QT_ATTR_INTS;
		a->n = (int)ap->n_ints;
		a->ints = qt_graph_alloc(g, ap->n_ints * sizeof(int64_t));
		if (!a->ints)
			return oom();
		if (ap->n_ints)
			memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
		/* Each element is NUL-terminated; qt_attr keeps no per-element length. */
		if (ap->n_strings > INT_MAX)
			return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" has too many values", lbl, name);
		a->type = QT_ATTR_STRINGS;
		a->n = (int)ap->n_strings;
		a->strings = qt_graph_alloc(g, ap->n_strings * sizeof(char *));
		if (!a->strings)
			return oom();
		for (size_t i = 0; i < ap->n_strings; i++)
			if (!(a->strings[i] = dup_bytes(g, &ap->strings[i])))
				return oom();
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
		a->type = QT_ATTR_GRAPH;
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
		a->type = QT_ATTR_UNDEFINED;
		break;
	default:
		if (type == 0)
			return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" has no type and no value", lbl, name);
		return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" has unknown type %d", lbl, name, type);
	}
	return QT_OK;
}

/* A small constant tensor in the graph arena from n values of esz bytes. */
static enum qt_status small_tensor(struct qt_graph *g, struct qt_tensor *t, enum qt_dtype dt, int rank, size_t n,
				   const void *vals)
{
	size_t esz = (size_t)qt_dtype_bits(dt) / 8;
	t->dtype = dt;
	t->rank = rank;
	t->dims[0] = (int64_t)n;
	t->nbytes = n * esz;
	t->data = qt_graph_alloc(g, t->nbytes ? t->nbytes : 1);
	if (!t->data)
		return oom();
	if (t->nbytes)
		memcpy(t->data, vals, t->nbytes);
	t->owned = 0;
	return QT_OK;
}

/* Fold a Constant node into an initializer on its output value. */
static enum qt_status fold_constant(struct loader *L, const Onnx__NodeProto *np, const char *lbl)
{
	struct qt_graph *g = L->g;
	if (np->n_output != 1 || !np->output[0] || !np->output[0][0])
		return qt_error(QT_E_FORMAT, "%s: a Constant needs exactly one named output", lbl);
	if (np->n_input != 0)
		return qt_error(QT_E_FORMAT, "%s: a Constant takes no inputs", lbl);
	if (np->n_attribute != 1)
		return qt_error(QT_E_FORMAT,
				"%s: a Constant needs exactly one of the attributes value, value_float, value_floats, "
				"value_int, value_ints",
				lbl);
	const char *out = np->output[0];
	const Onnx__AttributeProto *ap = np->attribute[0];
	const char *an = str_or_empty(ap->name);
	int type = attr_type_of(ap), want;
	if (!strcmp(an, "value"))
		want = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
	else if (!strcmp(an, "value_float"))
		want = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	else if (!strcmp(an, "value_floats"))
		want = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
	else if (!strcmp(an, "value_int"))
		want = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	else if (!strcmp(an, "value_ints"))
		want = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	else if (!strcmp(an, "sparse_value") || !strcmp(an, "value_string") || !strcmp(an, "value_strings"))
		return qt_error(QT_E_UNSUPPORTED, "%s: attribute \"%s\" is not supported", lbl, an);
	else
		return qt_error(QT_E_FORMAT, "%s: unknown attribute \"%s\"", lbl, an);
	if (type != want)
		return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" must be of type %s, not %s", lbl, an,
				attr_type_name(want), attr_type_name(type));

	int vi = qt_graph_value(g, out);
	if (vi < 0)
		return oom();
	if (g->values[vi].init || g->values[vi].is_input)
		return qt_error(QT_E_FORMAT, "%s: output \"%s\" is already defined elsewhere", lbl, out);
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	if (!t)
		return oom();
	enum qt_status st;
	if (want == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR) {
		if (!ap->t)
			return qt_error(QT_E_FORMAT, "%s: attribute \"value\" holds no tensor", lbl);
		char what[512];
		snprintf(what, sizeof what, "%s: tensor \"%s\"", lbl, out);
		st = qt_onnx_tensor_convert(ap->t, what, L->dir, g->arena, t);
	} else if (want == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) {
		st = small_tensor(g, t, QT_DTYPE_F32, 0, 1, &ap->f);
	} else if (want == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) {
		st = small_tensor(g, t, QT_DTYPE_I64, 0, 1, &ap->i);
	} else if (want == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS) {
		st = small_tensor(g, t, QT_DTYPE_F32, 1, ap->n_floats, ap->floats);
	} else {
		st = small_tensor(g, t, QT_DTYPE_I64, 1, ap->n_ints, ap->ints);
	}
	if (st)
		return st;
	g->values[vi].init = t;
	set_type_from_tensor(&g->values[vi], t);
	return QT_OK;
}

/*
 * Value indices for a node's input or output names; "" (an omitted optional
 * input or output) becomes -1. *out is in the graph arena.
 */
static enum qt_status name_list(struct qt_graph *g, char **names, size_t n, int **out)
{
	*out = qt_graph_alloc(g, n * sizeof(int));
	if (!*out)
		return oom();
	for (size_t k = 0; k < n; k++) {
		if (!names[k] || !names[k][0]) {
			(*out)[k] = -1;
			continue;
		}
		int vi = qt_graph_value(g, names[k]);
		if (vi < 0)
			return oom();
		(*out)[k] = vi;
	}
	return QT_OK;
}

static enum qt_status add_node(struct loader *L, const Onnx__NodeProto *np, const char *lbl)
{
	struct qt_graph *g = L->g;
	if (np->n_input > MAX_NODE_IO || np->n_output > MAX_NODE_IO)
		return qt_error(QT_E_FORMAT, "%s: more than %d inputs or outputs", lbl, MAX_NODE_IO);
	if (np->n_attribute > MAX_NODE_ATTRS)
		return qt_error(QT_E_FORMAT, "%s: %zu attributes, more than the limit of %d", lbl, np->n_attribute,
				MAX_NODE_ATTRS);
	int *ins, *outs;
	enum qt_status st = name_list(g, np->input, np->n_input, &ins);
	if (!st)
		st = name_list(g, np->output, np->n_output, &outs);
	if (st)
		return st;
	struct qt_attr *attrs = qt_graph_alloc(g, np->n_attribute * sizeof *attrs);
	if (!attrs)
		return oom();
	for (size_t k = 0; k < np->n_attribute; k++) {
		st = convert_attr(L, np->attribute[k], &attrs[k], lbl, k);
		if (st)
			return st;
		for (size_t j = 0; j < k; j++)
			if (!strcmp(attrs[j].name, attrs[k].name))
				return qt_error(QT_E_FORMAT, "%s: attribute \"%s\" is given twice", lbl, attrs[k].name);
	}
	int ni = qt_graph_add_node(g, np->op_type, str_or_empty(np->domain), str_or_empty(np->name));
	if (ni < 0)
		return oom();
	struct qt_node *n = &g->nodes[ni];
	n->n_inputs = (int)np->n_input;
	n->inputs = ins;
	n->n_outputs = (int)np->n_output;
	n->outputs = outs;
	n->n_attrs = (int)np->n_attribute;
	n->attrs = attrs;
	return QT_OK;
}

static enum qt_status load_opsets(struct loader *L, const Onnx__ModelProto *mp)
{
	struct qt_graph *g = L->g;
	size_t n = mp->n_opset_import;
	if (n == 0)
		return qt_error(QT_E_FORMAT, "the model imports no operator set (opset_import is empty)");
	if (n > MAX_OPSETS)
		return qt_error(QT_E_FORMAT, "%zu operator set imports, more than the limit of %d", n, MAX_OPSETS);
	g->opset_domains = qt_graph_alloc(g, n * sizeof *g->opset_domains);
	g->opset_versions = qt_graph_alloc(g, n * sizeof *g->opset_versions);
	if (!g->opset_domains || !g->opset_versions)
		return oom();
	int have_default = 0;
	for (size_t i = 0; i < n; i++) {
		const Onnx__OperatorSetIdProto *op = mp->opset_import[i];
		const char *dom = str_or_empty(op->domain);
		if (!strcmp(dom, "ai.onnx"))
			dom = ""; /* the same domain under its two names, as for nodes */
		if (!op->has_version)
			return qt_error(QT_E_FORMAT, "the import of operator set domain \"%s\" has no version", dom);
		if (op->version < (*dom ? 0 : 1) || (!*dom && op->version > INT_MAX))
			return qt_error(QT_E_FORMAT, "operator set domain \"%s\": version %lld is out of range", dom,
					(long long)op->version);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(g->opset_domains[j], dom))
				return qt_error(QT_E_FORMAT, "operator set domain \"%s\" is imported twice", dom);
		g->opset_domains[i] = qt_graph_strdup(g, dom);
		if (!g->opset_domains[i])
			return oom();
		g->opset_versions[i] = op->version;
		g->n_opsets = (int)i + 1;
		if (!*dom) {
			g->opset = (int)op->version;
			have_default = 1;
		}
	}
	if (!have_default) {
		/* Valid only if no node uses the default domain: such a model is made
		 * of other domains' ops (e.g. training ops), which qtool does not run. */
		const Onnx__GraphProto *gp = mp->graph;
		for (size_t i = 0; gp && i < gp->n_node; i++) {
			const char *d = gp->node[i]->domain ? gp->node[i]->domain : "";
			if (!*d || !strcmp(d, "ai.onnx"))
				return qt_error(QT_E_FORMAT, "node %zu uses the default operator set, which the model "
							     "does not import (domain \"\" or \"ai.onnx\")", i);
		}
		return qt_error(QT_E_UNSUPPORTED, "the model uses only operator set \"%s\", which qtool does not implement",
				g->opset_domains[0]);
	}
	return QT_OK;
}

static enum qt_status load_initializers(struct loader *L, const Onnx__GraphProto *gp)
{
	struct qt_graph *g = L->g;
	if (gp->n_sparse_initializer)
		return qt_error(QT_E_UNSUPPORTED, "sparse initializers are not supported");
	for (size_t i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *tp = gp->initializer[i];
		const char *name = str_or_empty(tp->name);
		if (!*name)
			return qt_error(QT_E_FORMAT, "initializer #%zu has no name", i);
		int vi = qt_graph_value(g, name);
		if (vi < 0)
			return oom();
		if (g->values[vi].init)
			return qt_error(QT_E_FORMAT, "tensor \"%s\": the initializer is defined twice", name);
		struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
		if (!t)
			return oom();
		char what[300];
		snprintf(what, sizeof what, "tensor \"%s\"", name);
		enum qt_status st = qt_onnx_tensor_convert(tp, what, L->dir, g->arena, t);
		if (st)
			return st;
		g->values[vi].init = t;
		set_type_from_tensor(&g->values[vi], t);
	}
	return QT_OK;
}

/* Graph inputs (kind "graph input") or outputs (kind "graph output") into idx_out/n_out. */
static enum qt_status load_io(struct loader *L, Onnx__ValueInfoProto **list, size_t n, int is_input,
			      int **idx_out, int *n_out)
{
	struct qt_graph *g = L->g;
	const char *kind = is_input ? "graph input" : "graph output";
	int *idx = qt_graph_alloc(g, n * sizeof(int));
	if (!idx)
		return oom();
	int cnt = 0;
	for (size_t i = 0; i < n; i++) {
		const char *name = str_or_empty(list[i]->name);
		if (!*name)
			return qt_error(QT_E_FORMAT, "%s #%zu has no name", kind, i);
		int vi = qt_graph_find_value(g, name);
		/* Older exporters list initializers among the inputs too. */
		if (is_input && vi >= 0 && g->values[vi].init)
			continue;
		if (vi < 0 && (vi = qt_graph_value(g, name)) < 0)
			return oom();
		struct qt_value *v = &g->values[vi];
		if (is_input ? v->is_input : v->is_output)
			return qt_error(QT_E_FORMAT, "%s \"%s\" is listed twice", kind, name);
		if (is_input)
			v->is_input = 1;
		else
			v->is_output = 1;
		enum qt_status st = set_type(L, vi, list[i], kind);
		if (st)
			return st;
		idx[cnt++] = vi;
	}
	*idx_out = idx;
	*n_out = cnt;
	return QT_OK;
}

static enum qt_status load_graph(struct loader *L, const Onnx__ModelProto *mp, const char *label)
{
	struct qt_graph *g = L->g;
	if (!mp->has_ir_version)
		return qt_error(QT_E_FORMAT, "truncated or not an ONNX model (no ir_version)");
	if (!mp->graph)
		return qt_error(QT_E_FORMAT, "truncated or not an ONNX model (no graph)");
	if (mp->ir_version < 1)
		return qt_error(QT_E_FORMAT, "ir_version %lld is not valid", (long long)mp->ir_version);
	g->ir_version = mp->ir_version;
	g->path = qt_graph_strdup(g, label);
	if (!g->path)
		return oom();
	enum qt_status st = load_opsets(L, mp);
	if (st)
		return st;
	const Onnx__GraphProto *gp = mp->graph;
	g->name = qt_graph_strdup(g, str_or_empty(gp->name));
	if (!g->name)
		return oom();
	if ((st = load_initializers(L, gp)) || (st = load_io(L, gp->input, gp->n_input, 1, &g->inputs, &g->n_inputs)) ||
	    (st = load_io(L, gp->output, gp->n_output, 0, &g->outputs, &g->n_outputs)))
		return st;

	if (gp->n_node > INT_MAX)
		return qt_error(QT_E_FORMAT, "too many nodes");
	for (size_t i = 0; i < gp->n_node; i++) {
		const Onnx__NodeProto *np = gp->node[i];
		char lbl[256];
		node_label(lbl, sizeof lbl, i, np);
		if (!np->op_type || !np->op_type[0])
			return qt_error(QT_E_FORMAT, "%s has no op_type", lbl);
		const char *dom = str_or_empty(np->domain);
		if (!strcmp(np->op_type, "Constant") && (!*dom || !strcmp(dom, "ai.onnx")))
			st = fold_constant(L, np, lbl);
		else
			st = add_node(L, np, lbl);
		if (st)
			return st;
	}

	/* value_info last, and only for values the graph uses: a declaration of
	 * a name nothing refers to would otherwise add a value nothing defines. */
	for (size_t i = 0; i < gp->n_value_info; i++) {
		int vi = qt_graph_find_value(g, str_or_empty(gp->value_info[i]->name));
		if (vi >= 0 && (st = set_type(L, vi, gp->value_info[i], "value_info")))
			return st;
	}
	return QT_OK;
}

enum qt_status qt_graph_load_onnx_mem(const void *buf, size_t len, const char *dir, const char *label,
				      struct qt_graph **out)
{
	*out = NULL;
	if (!label)
		label = "<memory>";
	if (!buf && len)
		return qt_error(QT_E_INVALID_ARG, "%s: NULL buffer", label);
	if (len > QT_ONNX_MAX_FILE)
		return qt_error(QT_E_FORMAT, "%s: %zu bytes is more than the 2 GiB limit", label, len);
	struct qt_graph *g = NULL;
	struct qt_pb_scratch s = {0};
	ProtobufCMessage *m = NULL;
	enum qt_status st = qt_graph_new(&g);
	if (!st)
		st = qt_pb_scratch_init(&s, len);
	if (!st)
		st = qt_pb_unpack(&onnx__model_proto__descriptor, buf, len, &s, "an ONNX model", &m);
	if (!st) {
		struct loader L = {g, dir};
		st = load_graph(&L, (const Onnx__ModelProto *)m, label);
	}
	/* Drop protobuf memory before sorting: the IR holds copies of everything. */
	qt_pb_scratch_free(&s);
	if (!st) {
		qt_sha256(buf, len, g->sha256);
		st = qt_graph_finalize(g);
	}
	if (st) {
		qt_graph_free(g);
		return qt_error_prefix(st, "%s", label);
	}
	*out = g;
	return QT_OK;
}

enum qt_status qt_graph_load_onnx(const char *path, struct qt_graph **out)
{
	*out = NULL;
	char dir[PATH_MAX];
	if (qt_onnx_dirname(path, dir, sizeof dir))
		return qt_error(QT_E_INVALID_ARG, "%s: path is too long", path);
	void *buf;
	size_t len;
	enum qt_status st = qt_onnx_read_file(path, &buf, &len);
	if (st)
		return st;
	st = qt_graph_load_onnx_mem(buf, len, dir, path, out);
	free(buf);
	return st;
}
