/* qtool export: a .qmod as a standard ONNX QDQ model (docs/EXPORT.md). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qtool/onnx.h"
#include "qtool/qmod.h"

static const char export_help[] =
	"usage: qtool export MODEL.qmod -o OUT.onnx\n\n"
	"Writes a quantized model as a standard ONNX model in QDQ form, for ONNX Runtime\n"
	"and other runtimes: integer weights (int8, or int4 at opset 21) and int32 biases\n"
	"feed DequantizeLinear; every quantized activation goes through QuantizeLinear and\n"
	"DequantizeLinear (uint8 or uint4, per tensor). It computes what\n"
	"'qtool eval --simulate' computes, except that it requantizes in float (round half\n"
	"to even) where qtool's integer runtime uses a 32-bit multiplier and shift, so an\n"
	"output code can differ by one (docs/EXPORT.md).\n\n"
	"  -o, --output FILE   the .onnx to write (required; never the input)\n\n"
	"Exit code 2 with one line naming the layer when ONNX cannot express it (2-bit\n"
	"weights; weight groups that do not cover whole kernel windows).\n\n"
	"examples:\n"
	"  qtool export cnn.qmod -o cnn.qdq.onnx\n"
	"  qtool eval cnn.qdq.onnx --data fashion-mnist:test --reference cnn.qmod\n";

int cmd_export(int argc, char **argv)
{
	const char *model = NULL, *out = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(export_help, stdout);
			return 0;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (i + 1 >= argc)
				return cli_usage_error("export", "%s needs a file name", a);
			out = argv[++i];
		} else if (a[0] == '-') {
			return cli_usage_error("export", "unknown option '%s' (see 'qtool export --help')", a);
		} else if (!model) {
			model = a;
		} else {
			return cli_usage_error("export", "more than one model given ('%s')", a);
		}
	}
	if (!model)
		return cli_usage_error("export", "no model given (see 'qtool export --help')");
	if (!out)
		return cli_usage_error("export", "-o OUT.onnx is required");
	const char *ins[1] = {model};
	enum qt_status st = cli_check_not_input(out, ins, 1);
	if (st)
		return cli_status_error("export", st);
	struct qt_graph *g = NULL;
	if ((st = qt_qmod_read(model, &g)) != QT_OK)
		return cli_status_error("export", st);
	uint8_t *buf = NULL;
	size_t len = 0;
	int opset = 0;
	st = qt_onnx_export_qdq(g, &buf, &len, &opset);
	qt_graph_free(g);
	if (st)
		return cli_status_error("export", qt_error_prefix(st, "%s", model));
	struct cli_out o;
	if ((st = cli_out_open(&o, out)) != QT_OK) {
		free(buf);
		return cli_status_error("export", st);
	}
	if (fwrite(buf, 1, len, o.f) != len) {
		cli_out_abort(&o);
		free(buf);
		return cli_status_error("export", qt_error(QT_E_IO, "%s: write failed", out));
	}
	free(buf);
	if ((st = cli_out_commit(&o)) != QT_OK)
		return cli_status_error("export", st);
	printf("%s: QDQ ONNX model, opset %d, %zu bytes\n", out, opset, len);
	return 0;
}
