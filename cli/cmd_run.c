/* qtool run: one inference (FP32, integer or simulated) on tensors from files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "qtool/graph.h"
#include "qtool/npy.h"
#include "qtool/onnx.h"
#include "qtool/model.h"
#include "qtool/rt.h"

static const char run_help[] =
	"usage: qtool run MODEL --input NAME=FILE [--input NAME=FILE ...] --output DIR\n"
	"                 [--simulate] [--stats]\n\n"
	"Runs MODEL once and writes each graph output as DIR/NAME.npy (float32). An ONNX\n"
	"model runs in FP32; a .qmod runs on the integer runtime, the same one 'qtool eval'\n"
	"uses, so its outputs equal what eval compares.\n\n"
	"  -i, --input NAME=FILE  value for graph input NAME: a .npy file or an ONNX\n"
	"                     TensorProto .pb file; every graph input needs one\n"
	"  -o, --output DIR   folder for the outputs (created if missing; checked first)\n"
	"  --simulate         run a .qmod as its float simulation (fake quantization)\n"
	"  --stats            print peak activation memory and time per op type on stderr\n"
	"                     (ONNX models)\n";

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

/* The output folder must be a folder we can write into, or creatable. */
static enum qt_status check_outdir(const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			return qt_error(QT_E_INVALID_ARG, "%s: exists and is not a folder", dir);
		if (access(dir, W_OK) != 0)
			return qt_error(QT_E_IO, "%s: cannot write into folder: %s", dir, strerror(errno));
		return QT_OK;
	}
	char parent[4096];
	errno = 0;
	snprintf(parent, sizeof parent, "%s", dir);
	size_t n = strlen(parent);
	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = '\0';
	char *slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(parent, W_OK) != 0)
		return qt_error(QT_E_IO, "%s: cannot create folder in %s: %s", dir, parent,
				errno ? strerror(errno) : "not a folder");
	return QT_OK;
}

int cmd_run(int argc, char **argv)
{
	const char *outdir = NULL, *inputs[64], *pos[1];
	const char *in_names[64], *in_files[64];
	int n_in = 0, stats = 0, simulate = 0, n_pos, rc;
	const struct cli_opt opts[] = {
		{.name = "--input", .alias = "-i", .list = inputs, .n_list = &n_in, .cap = 64},
		{.name = "--output", .alias = "-o", .value = &outdir},
		{.name = "--simulate", .flag = &simulate},
		{.name = "--stats", .flag = &stats},
		{0},
	};
	if ((rc = cli_parse_args("run", run_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	if (!n_pos)
		return cli_usage_error("run", "no model given (see 'qtool run --help')");
	const char *model = pos[0];
	if (!outdir)
		return cli_usage_error("run", "--output DIR is required");
	if (cli_out_is_stdout(outdir))
		return cli_usage_error("run", "--output %s: run writes one .npy per graph output into a folder", outdir);
	for (int k = 0; k < n_in; k++) {
		const char *eq = strchr(inputs[k], '=');
		if (!eq || eq == inputs[k] || !eq[1])
			return cli_usage_error("run", "--input '%s' is not NAME=FILE", inputs[k]);
		/* The name is the part before '=': argv is ours to split. */
		*(char *)eq = '\0';
		in_names[k] = inputs[k];
		in_files[k] = eq + 1;
	}
	enum qt_status st = check_outdir(outdir);
	if (st)
		return cli_status_error("run", st);

	struct qt_model *m = NULL;
	struct qt_tensor *ins = NULL, *outs = NULL;
	const struct qt_graph *g = NULL;
	rc = 0;
	if ((st = (simulate ? qt_model_open_sim : qt_model_open)(model, &m)) != QT_OK)
		return cli_status_error("run", st);
	g = qt_model_graph(m);
	if (stats && qt_model_kind(m) != QT_MODEL_ONNX) {
		rc = cli_usage_error("run", "--stats times the FP32 runtime: it needs an ONNX model");
		goto out;
	}
	ins = calloc((size_t)g->n_inputs + 1, sizeof *ins);
	outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
	if (!ins || !outs) {
		rc = cli_status_error("run", qt_error(QT_E_NOMEM, "out of memory"));
		goto out;
	}
	for (int i = 0; i < g->n_inputs; i++) {
		const struct qt_value *v = &g->values[g->inputs[i]];
		/* ONNX requires a graph input's type; a tensor type always declares its
		 * element type, so an input without one is a sequence, map or optional. */
		if (v->dtype == QT_DTYPE_UNDEFINED && v->rank < 0) {
			rc = cli_status_error("run", qt_error(QT_E_UNSUPPORTED,
							      "%s: input \"%s\" is not a tensor (a sequence, map or "
							      "optional input?): unsupported",
							      model, v->name));
			goto out;
		}
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
	if ((st = qt_model_run_all(m, ins, outs)) != QT_OK) {
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
		const struct qt_rt_stats *s = qt_model_stats(m);
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
	qt_model_free(m);
	return rc;
}
