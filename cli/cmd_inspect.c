/* qtool inspect: what a model contains and what it costs to run. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "qtool/graph.h"
#include "qtool/rt.h"

static const char inspect_help[] =
	"usage: qtool inspect MODEL [--json] [--input-shape NAME=D0,D1,...]\n\n"
	"Shows a model's inputs and outputs with shapes, a histogram of op types, the\n"
	"parameter count and bytes, multiply-accumulates (MACs) per Conv, ConvTranspose,\n"
	"Gemm and MatMul node and in total (at batch 1), and any op types the runtime\n"
	"does not support.\n\n"
	"  --json   print the same as one JSON object\n"
	"  --input-shape NAME=D0,D1,...\n"
	"           the shape to count MACs at, for inputs with symbolic dims other\n"
	"           than the batch (repeatable; the batch defaults to 1)\n"
	"\n.qmod files: also the nodes that run in float, each with the reason.\n";

/* MACs of one node from the concrete shapes of its inputs and outputs (batch 1 run). */
static double node_macs(const struct qt_node *n, const struct qt_rt *rt)
{
	const struct qt_tensor *x = n->n_inputs > 0 ? qt_rt_value(rt, n->inputs[0]) : NULL;
	const struct qt_tensor *w = n->n_inputs > 1 ? qt_rt_value(rt, n->inputs[1]) : NULL;
	const struct qt_tensor *y = n->n_outputs > 0 ? qt_rt_value(rt, n->outputs[0]) : NULL;
	if (!x || !w || !y)
		return 0;
	if (!strcmp(n->op_type, "Conv") && w->rank >= 3) {
		double k = 1;
		for (int i = 1; i < w->rank; i++)
			k *= (double)w->dims[i]; /* Cin/group x kernel */
		return (double)qt_tensor_numel(y) * k;
	}
	if (!strcmp(n->op_type, "ConvTranspose") && w->rank >= 3) {
		double k = 1;
		for (int i = 1; i < w->rank; i++)
			k *= (double)w->dims[i]; /* Cout/group x kernel */
		return (double)qt_tensor_numel(x) * k;
	}
	if (!strcmp(n->op_type, "Gemm") || !strcmp(n->op_type, "MatMul")) {
		/* Output elements times the reduction length. */
		int64_t kdim = x->rank >= 1 ? x->dims[x->rank - 1] : 1;
		if (!strcmp(n->op_type, "Gemm") && qt_node_attr_int(n, "transA", 0) && x->rank == 2)
			kdim = x->dims[0];
		return (double)qt_tensor_numel(y) * (double)kdim;
	}
	return 0;
}

static const char *dims_str(const struct qt_value *v, char *buf, size_t cap)
{
	size_t o = 0;
	if (v->rank < 0)
		return "?";
	o += (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < v->rank && o < cap; i++) {
		if (v->dims[i] >= 0)
			o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)v->dims[i]);
		else
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? "," : "",
					      v->dim_params[i] ? v->dim_params[i] : "?");
	}
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
	return buf;
}

int cmd_inspect(int argc, char **argv)
{
	const char *pos[1], *shape_args[QT_MAX_INPUT_SHAPES];
	int json = 0, n_pos, rc, n_shape_args = 0;
	struct qt_input_shapes shapes = {0};
	const struct cli_opt opts[] = {
		{.name = "--json", .flag = &json},
		{.name = "--input-shape", .list = shape_args, .n_list = &n_shape_args, .cap = QT_MAX_INPUT_SHAPES},
		{0},
	};
	if ((rc = cli_parse_args("inspect", inspect_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	for (int k = 0; k < n_shape_args; k++)
		if (qt_input_shapes_parse(&shapes, shape_args[k]))
			return cli_usage_error("inspect", "%s", qt_error_msg());
	const char *path = n_pos ? pos[0] : NULL;
	if (!path)
		return cli_usage_error("inspect", "no model given (see 'qtool inspect --help')");
	size_t plen = strlen(path);
	if (plen > 5 && !strcmp(path + plen - 5, ".qmod"))
		return cmd_inspect_qmod(path, json);

	struct qt_graph *g;
	enum qt_status st = qt_graph_load_onnx(path, &g);
	if (st)
		return cli_status_error("inspect", st);

	/* Parameters: every initializer. */
	int64_t n_params = 0;
	size_t param_bytes = 0;
	for (int v = 0; v < g->n_values; v++)
		if (g->values[v].init) {
			n_params += qt_tensor_numel(g->values[v].init);
			param_bytes += g->values[v].init->nbytes;
		}
	char unsupported[2048];
	int n_unsup = qt_rt_unsupported_ops(g, unsupported, sizeof unsupported);

	/* Shapes for MACs come from one run on zeros at batch 1 (or the given shapes). */
	struct qt_rt *rt = NULL;
	struct qt_tensor *ins = calloc((size_t)g->n_inputs + 1, sizeof *ins);
	struct qt_tensor *outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
	int ran = 0;
	char why[512] = "";
	if ((st = qt_input_shapes_check(g, &shapes)) != QT_OK) {
		qt_graph_free(g);
		free(ins);
		free(outs);
		return cli_status_error("inspect", st);
	}
	if (n_unsup == 0 && ins && outs && qt_rt_new(g, &rt) == QT_OK) {
		enum qt_status rs = QT_OK;
		for (int i = 0; i < g->n_inputs && !rs; i++) {
			int64_t dims[QT_MAX_RANK];
			int r;
			rs = qt_graph_dry_run_dims(g, i, &shapes, dims, &r);
			if (!rs)
				rs = qt_tensor_alloc(&ins[i], g->values[g->inputs[i]].dtype, r, dims);
		}
		qt_rt_keep_all(rt, 1);
		if (!rs)
			rs = qt_rt_run(rt, ins, outs);
		ran = !rs;
		if (rs)
			snprintf(why, sizeof why, "%s", qt_error_msg());
	}
	double total_macs = 0;

	/* Op histogram in first-seen order. */
	const char *ops[256];
	int counts[256], n_ops = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		int k;
		for (k = 0; k < n_ops; k++)
			if (!strcmp(ops[k], g->nodes[i].op_type))
				break;
		if (k == n_ops && n_ops < 256) {
			ops[n_ops] = g->nodes[i].op_type;
			counts[n_ops++] = 0;
		}
		if (k < 256)
			counts[k]++;
	}

	char buf[256];
	if (json) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "model", path);
		cJSON_AddNumberToObject(root, "opset", g->opset);
		cJSON_AddNumberToObject(root, "ir_version", (double)g->ir_version);
		cJSON *jin = cJSON_AddArrayToObject(root, "inputs");
		for (int i = 0; i < g->n_inputs; i++) {
			const struct qt_value *v = &g->values[g->inputs[i]];
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", v->name);
			cJSON_AddStringToObject(o, "dtype", qt_dtype_name(v->dtype));
			cJSON_AddStringToObject(o, "shape", dims_str(v, buf, sizeof buf));
			cJSON_AddItemToArray(jin, o);
		}
		cJSON *jout = cJSON_AddArrayToObject(root, "outputs");
		for (int i = 0; i < g->n_outputs; i++) {
			const struct qt_value *v = &g->values[g->outputs[i]];
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", v->name);
			cJSON_AddStringToObject(o, "dtype", qt_dtype_name(v->dtype));
			cJSON_AddStringToObject(o, "shape", dims_str(v, buf, sizeof buf));
			cJSON_AddItemToArray(jout, o);
		}
		cJSON *jops = cJSON_AddObjectToObject(root, "ops");
		for (int k = 0; k < n_ops; k++)
			cJSON_AddNumberToObject(jops, ops[k], counts[k]);
		cJSON_AddNumberToObject(root, "nodes", g->n_nodes);
		cJSON_AddNumberToObject(root, "parameters", (double)n_params);
		cJSON_AddNumberToObject(root, "parameter_bytes", (double)param_bytes);
		cJSON *jm = cJSON_AddArrayToObject(root, "macs_per_node");
		for (int i = 0; ran && i < g->n_nodes; i++) {
			double m = node_macs(&g->nodes[i], rt);
			if (m <= 0)
				continue;
			total_macs += m;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "node", g->nodes[i].name);
			cJSON_AddStringToObject(o, "op", g->nodes[i].op_type);
			cJSON_AddNumberToObject(o, "macs", m);
			cJSON_AddItemToArray(jm, o);
		}
		if (ran) {
			cJSON_AddNumberToObject(root, "macs_total", total_macs);
		} else {
			cJSON_AddNullToObject(root, "macs_total");
			cJSON_AddStringToObject(root, "macs_unknown_because", why);
		}
		cJSON *ju = cJSON_AddArrayToObject(root, "unsupported_ops");
		if (n_unsup) {
			char *save = NULL;
			for (char *t = strtok_r(unsupported, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
				cJSON_AddItemToArray(ju, cJSON_CreateString(t));
		}
		char *s = cJSON_Print(root);
		puts(s);
		free(s);
		cJSON_Delete(root);
	} else {
		printf("model: %s (ir_version %lld, opset %d, %d nodes)\n", path, (long long)g->ir_version, g->opset,
		       g->n_nodes);
		for (int i = 0; i < g->n_inputs; i++) {
			const struct qt_value *v = &g->values[g->inputs[i]];
			printf("input  %-20s %-8s %s\n", v->name, qt_dtype_name(v->dtype), dims_str(v, buf, sizeof buf));
		}
		for (int i = 0; i < g->n_outputs; i++) {
			const struct qt_value *v = &g->values[g->outputs[i]];
			printf("output %-20s %-8s %s\n", v->name, qt_dtype_name(v->dtype), dims_str(v, buf, sizeof buf));
		}
		printf("ops:");
		for (int k = 0; k < n_ops; k++)
			printf(" %s=%d", ops[k], counts[k]);
		printf("\nparameters: %lld (%zu bytes)\n", (long long)n_params, param_bytes);
		if (ran) {
			printf("MACs at %s:\n", shapes.n ? "the given shapes" : "batch 1");
			for (int i = 0; i < g->n_nodes; i++) {
				double m = node_macs(&g->nodes[i], rt);
				if (m <= 0)
					continue;
				total_macs += m;
				printf("  %-28s %-14s %12.0f\n", g->nodes[i].name[0] ? g->nodes[i].name : "(unnamed)",
				       g->nodes[i].op_type, m);
			}
			printf("MACs total: %.0f\n", total_macs);
		} else {
			printf("MACs: unknown (the model could not be run on zeros%s%s)\n", why[0] ? ": " : "", why);
		}
		if (n_unsup)
			printf("unsupported ops (%d): %s\n", n_unsup, unsupported);
	}
	for (int i = 0; i < g->n_inputs; i++)
		qt_tensor_free(&ins[i]);
	for (int i = 0; i < g->n_outputs; i++)
		qt_tensor_free(&outs[i]);
	free(ins);
	free(outs);
	qt_rt_free(rt);
	qt_graph_free(g);
	return 0;
}
