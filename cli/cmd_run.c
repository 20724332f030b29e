/* qtool run: one FP32 inference on tensors from files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "qtool/graph.h"
#include "qtool/model.h"
#include "qtool/npy.h"
#include "qtool/onnx.h"
#include "qtool/rt.h"

static const char run_help[] =
	"usage: qtool run MODEL --input NAME=FILE [--input NAME=FILE ...] --output DIR [--stats]\n\n"
	"Runs MODEL once in FP32 and writes each graph output as DIR/NAME.npy. A .qmod\n"
	"MODEL runs on the integer runtime instead (one input; its first output is\n"
	"written, dequantized to float32).\n\n"
	"  --input NAME=FILE  value for graph input NAME: a .npy file or an ONNX TensorProto\n"
	"                     .pb file; every graph input needs one\n"
	"  --output DIR       folder for the outputs (created if missing)\n"
	"  --stats            print peak activation memory and time per op type on stderr\n";

/* Output file name for a value name: characters other than [A-Za-z0-9._-] become '_'. */
static void safe_name(char *dst, size_t cap, const char *name)
{
	size_t i = 0;
	for (; name[i] && i + 1 < cap; i++) {
		char c = name[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			 c == '_' || c == '-';
		dst[i] = ok ? c : '_';
	}
	dst[i] = '\0';
	if (i == 0 || !strcmp(dst, ".") || !strcmp(dst, ".."))
		snprintf(dst, cap, "output");
}

static enum qt_status read_tensor(const char *file, struct qt_tensor *t)
{
	size_t n = strlen(file);
	if (n > 4 && !strcmp(file + n - 4, ".npy"))
		return qt_npy_read(file, t);
	if (n > 3 && !strcmp(file + n - 3, ".pb"))
		return qt_tensor_read_pb(file, t, NULL, 0);
	return qt_error(QT_E_INVALID_ARG, "%s: unknown input file type (use .npy or .pb)", file);
}

/* A .qmod on the integer runtime: its single input, its first output. */
static int run_qmod(struct qt_model *m, const char *model, int n_in, const char **in_names, const char **in_files,
		    const char *outdir)
{
	const struct qt_graph *g = qt_model_graph(m);
	if (g->n_inputs != 1 || n_in != 1 || strcmp(in_names[0], g->values[g->inputs[0]].name))
		return cli_usage_error("run", "%s: a .qmod runs with exactly one --input %s=FILE", model,
				       g->n_inputs > 0 ? g->values[g->inputs[0]].name : "INPUT");
	struct qt_tensor x = {0}, y = {0};
	char name[256], path[4096];
	safe_name(name, sizeof name, g->values[g->outputs[0]].name);
	snprintf(path, sizeof path, "%s/%s.npy", outdir, name);
	const char *inputs_list[2] = {model, in_files[0]};
	enum qt_status st = read_tensor(in_files[0], &x);
	if (!st && (st = qt_model_run(m, &x, &y)) != QT_OK)
		qt_error_prefix(st, "%s", model);
	if (!st && mkdir(outdir, 0755) != 0 && errno != EEXIST)
		st = qt_error(QT_E_IO, "%s: cannot create folder: %s", outdir, strerror(errno));
	if (!st && (st = cli_check_not_input(path, inputs_list, 2)) == QT_OK && (st = qt_npy_write(path, &y)) == QT_OK)
		printf("%s\n", path);
	qt_tensor_free(&x);
	qt_tensor_free(&y);
	return st ? cli_status_error("run", st) : 0;
}

int cmd_run(int argc, char **argv)
{
	const char *model = NULL, *outdir = NULL;
	const char *in_names[64], *in_files[64];
	int n_in = 0, stats = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(run_help, stdout);
			return 0;
		} else if (!strcmp(a, "--input") || !strcmp(a, "-i")) {
			if (++i >= argc)
				return cli_usage_error("run", "--input needs NAME=FILE");
			char *eq = strchr(argv[i], '=');
			if (!eq || eq == argv[i] || !eq[1])
				return cli_usage_error("run", "--input '%s' is not NAME=FILE", argv[i]);
			if (n_in == 64)
				return cli_usage_error("run", "more than 64 --input flags");
			*eq = '\0';
			in_names[n_in] = argv[i];
			in_files[n_in++] = eq + 1;
		} else if (!strcmp(a, "--output") || !strcmp(a, "-o")) {
			if (++i >= argc)
				return cli_usage_error("run", "--output needs a folder");
			outdir = argv[i];
		} else if (!strcmp(a, "--stats")) {
			stats = 1;
		} else if (a[0] == '-') {
			return cli_usage_error("run", "unknown option '%s' (see 'qtool run --help')", a);
		} else if (!model) {
			model = a;
		} else {
			return cli_usage_error("run", "more than one model given ('%s')", a);
		}
	}
	if (!model)
		return cli_usage_error("run", "no model given (see 'qtool run --help')");
	if (!outdir)
		return cli_usage_error("run", "--output DIR is required");

	struct qt_graph *g = NULL;
	struct qt_rt *rt = NULL;
	struct qt_tensor *ins = NULL, *outs = NULL;
	int rc = 0;
	enum qt_status st = qt_graph_load_onnx(model, &g);
	if (st) {
		/* Not ONNX: a .qmod runs on the integer runtime (qt_model_open
		 * tells them apart by content); otherwise report the ONNX error. */
		char onnx_msg[1024];
		snprintf(onnx_msg, sizeof onnx_msg, "%s", qt_error_msg());
		struct qt_model *qm = NULL;
		if (qt_model_open(model, &qm) == QT_OK && qt_model_kind(qm) == QT_MODEL_QMOD) {
			rc = run_qmod(qm, model, n_in, in_names, in_files, outdir);
			qt_model_free(qm);
			return rc;
		}
		qt_model_free(qm);
		qt_error(st, "%s", onnx_msg);
		return cli_status_error("run", st);
	}
	ins = calloc((size_t)g->n_inputs + 1, sizeof *ins);
	outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
	if (!ins || !outs) {
		rc = cli_usage_error("run", "out of memory");
		goto out;
	}
	for (int k = 0; k < n_in; k++) {
		int found = -1;
		for (int i = 0; i < g->n_inputs; i++)
			if (!strcmp(g->values[g->inputs[i]].name, in_names[k]))
				found = i;
		if (found < 0) {
			char list[1024];
			size_t o = 0;
			list[0] = '\0';
			for (int i = 0; i < g->n_inputs && o < sizeof list; i++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s\"%s\"", i ? ", " : "",
						      g->values[g->inputs[i]].name);
			rc = cli_usage_error("run", "%s: the model has no input \"%s\" (its inputs: %s)", model,
					     in_names[k], list);
			goto out;
		}
		if (ins[found].data) {
			rc = cli_usage_error("run", "input \"%s\" given twice", in_names[k]);
			goto out;
		}
		st = read_tensor(in_files[k], &ins[found]);
		if (st) {
			rc = cli_status_error("run", st);
			goto out;
		}
	}
	for (int i = 0; i < g->n_inputs; i++)
		if (!ins[i].data) {
			rc = cli_usage_error("run", "%s: no value for input \"%s\" (add --input %s=FILE)", model,
					     g->values[g->inputs[i]].name, g->values[g->inputs[i]].name);
			goto out;
		}
	if ((st = qt_rt_new(g, &rt)) != QT_OK || (st = qt_rt_run(rt, ins, outs)) != QT_OK) {
		qt_error_prefix(st, "%s", model);
		rc = cli_status_error("run", st);
		goto out;
	}
	if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
		rc = cli_usage_error("run", "%s: cannot create folder: %s", outdir, strerror(errno));
		goto out;
	}
	for (int k = 0; k < g->n_outputs; k++) {
		char name[256], path[4096];
		safe_name(name, sizeof name, g->values[g->outputs[k]].name);
		snprintf(path, sizeof path, "%s/%s.npy", outdir, name);
		const char *inputs_list[66];
		int ni = 0;
		inputs_list[ni++] = model;
		for (int j = 0; j < n_in; j++)
			inputs_list[ni++] = in_files[j];
		if ((st = cli_check_not_input(path, inputs_list, ni)) != QT_OK ||
		    (st = qt_npy_write(path, &outs[k])) != QT_OK) {
			rc = cli_status_error("run", st);
			goto out;
		}
		printf("%s\n", path);
	}
	if (stats) {
		const struct qt_rt_stats *s = qt_rt_stats(rt);
		fprintf(stderr, "peak activation memory: %zu bytes\n", s->peak_bytes);
		fprintf(stderr, "%-24s %8s %12s\n", "op type", "calls", "ms");
		for (int k = 0; k < s->n_op_types; k++)
			fprintf(stderr, "%-24s %8lld %12.3f\n", s->op_type[k], (long long)s->op_calls[k],
				s->op_seconds[k] * 1e3);
	}
out:
	if (ins)
		for (int i = 0; i < g->n_inputs; i++)
			qt_tensor_free(&ins[i]);
	if (outs)
		for (int i = 0; i < g->n_outputs; i++)
			qt_tensor_free(&outs[i]);
	free(ins);
	free(outs);
	qt_rt_free(rt);
	qt_graph_free(g);
	return rc;
}
