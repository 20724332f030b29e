/* qtool quantize: FP32 ONNX + calibration file -> .qmod. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qtool/calib.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"

static const char quantize_help[] =
	"usage: qtool quantize MODEL --calib FILE -o OUT.qmod [--bits wXaY]\n"
	"                      [--granularity channel|tensor] [--group-size G]\n"
	"                      [--calib-method minmax|percentile|entropy|mse]\n"
	"                      [--input-shape NAME=D0,D1,...]\n\n"
	"Quantizes an FP32 ONNX model with the activation statistics from\n"
	"'qtool calibrate' and writes a compact .qmod for the integer runtime.\n"
	"BatchNormalization is folded into the preceding Conv, Relu and Clip(0,..)\n"
	"are fused into their producer, Conv/Gemm/MatMul weights are quantized\n"
	"symmetrically (round to nearest) and biases become int32.\n\n"
	"  --calib FILE        calibration file made for this model (required)\n"
	"  -o, --output FILE   the .qmod to write (required; never the input)\n"
	"  --bits wXaY         weight and activation bits: w8a8 (default), w4a8, w2a8,\n"
	"                      w8a4, w4a4\n"
	"  --granularity G     weight scales per output channel (default) or per tensor\n"
	"  --group-size G      per-group weight scales: G consecutive inputs share one\n"
	"                      scale (implies group granularity)\n"
	"  --calib-method M    activation range method; default: the calibration file's\n"
	"                      (ranges are recomputed from its histograms, no recalibration)\n"
	"  --input-shape NAME=D0,D1,...\n"
	"                      shape of input NAME for the one dry run that learns value\n"
	"                      types; default: the shape calibration saw (symbolic dims\n"
	"                      other than the batch need one of the two). Repeatable\n";

int cmd_quantize(int argc, char **argv)
{
	const char *model = NULL, *calib = NULL, *out = NULL, *bits = "w8a8", *method = NULL, *gran = "channel";
	long group = 0;
	struct qt_input_shapes given = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(quantize_help, stdout);
			return 0;
		} else if (!strcmp(a, "--calib")) {
			if (!v)
				return cli_usage_error("quantize", "--calib needs a calibration file");
			calib = v, i++;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (!v)
				return cli_usage_error("quantize", "%s needs a file name", a);
			out = v, i++;
		} else if (!strcmp(a, "--bits")) {
			if (!v)
				return cli_usage_error("quantize", "--bits needs wXaY");
			bits = v, i++;
		} else if (!strcmp(a, "--calib-method")) {
			if (!v)
				return cli_usage_error("quantize", "--calib-method needs a method");
			method = v, i++;
		} else if (!strcmp(a, "--granularity")) {
			if (!v)
				return cli_usage_error("quantize", "--granularity needs channel or tensor");
			gran = v, i++;
		} else if (!strcmp(a, "--group-size")) {
			if (cli_parse_long(v, 1, 65535, &group))
				return cli_usage_error("quantize", "--group-size needs an integer in 1..65535, not '%s'",
						       v ? v : "");
			i++;
		} else if (!strcmp(a, "--input-shape")) {
			if (!v)
				return cli_usage_error("quantize", "--input-shape needs NAME=D0,D1,...");
			if (qt_input_shapes_parse(&given, v))
				return cli_usage_error("quantize", "%s", qt_error_msg());
			i++;
		} else if (a[0] == '-') {
			return cli_usage_error("quantize", "unknown option '%s' (see 'qtool quantize --help')", a);
		} else if (!model) {
			model = a;
		} else {
			return cli_usage_error("quantize", "more than one model given ('%s')", a);
		}
	}
	struct qt_quant_opts o = {0};
	if (!model)
		return cli_usage_error("quantize", "no model given (see 'qtool quantize --help')");
	if (!calib)
		return cli_usage_error("quantize", "--calib FILE is required (make one with 'qtool calibrate')");
	if (!out)
		return cli_usage_error("quantize", "-o OUT.qmod is required");
	if (qt_parse_bits(bits, &o.wbits, &o.abits))
		return cli_usage_error("quantize",
				       "--bits '%s' is not supported: use wXaY with X in {8,4,2} and Y in {8,4}", bits);
	if (!strcmp(gran, "channel"))
		o.gran = QT_GRAN_CHANNEL;
	else if (!strcmp(gran, "tensor"))
		o.gran = QT_GRAN_TENSOR;
	else if (!strcmp(gran, "group"))
		o.gran = QT_GRAN_GROUP;
	else
		return cli_usage_error("quantize", "--granularity '%s' must be channel, tensor or group", gran);
	if (group > 0) {
		if (o.gran == QT_GRAN_TENSOR)
			return cli_usage_error("quantize", "--group-size cannot be combined with --granularity tensor");
		o.gran = QT_GRAN_GROUP;
		o.group_size = (int)group;
	} else if (o.gran == QT_GRAN_GROUP) {
		return cli_usage_error("quantize", "--granularity group needs --group-size G");
	}
	enum qt_calib_method m;
	if (method && qt_calib_method_parse(method, &m))
		return cli_usage_error("quantize", "--calib-method '%s' must be minmax, percentile, entropy or mse",
				       method);
	o.calib_method = method;
	o.command_line = cli_command_line();
	const char *ins[2] = {model, calib};
	enum qt_status st = cli_check_not_input(out, ins, 2);
	if (st)
		return cli_status_error("quantize", st);

	struct qt_graph *g = NULL;
	struct qt_calib_table *t = NULL;
	int rc = 0;
	if ((st = qt_graph_load_onnx(model, &g)) != QT_OK || (st = qt_calib_read(calib, g, &t)) != QT_OK) {
		rc = cli_status_error("quantize", st);
		goto done;
	}
	/* Dry-run shapes: what calibration saw, then what the user gave. */
	st = qt_input_shapes_check(g, &given);
	struct qt_input_shapes shapes = t->input_shapes;
	for (int k = 0; k < given.n && !st; k++)
		st = qt_input_shapes_set(&shapes, given.s[k].name, given.s[k].rank, given.s[k].dims);
	o.input_shapes = &shapes;
	if (st || (st = qt_quantize_graph(g, t, &o)) != QT_OK) {
		qt_error_prefix(st, "%s", model);
		rc = cli_status_error("quantize", st);
		goto done;
	}
	if ((st = qt_qmod_write(g, out)) != QT_OK) {
		rc = cli_status_error("quantize", st);
		goto done;
	}
	struct qt_qmod_summary s;
	qt_qmod_summarize(g, &s);
	printf("wrote %s: %d quantized layers, %lld weight bytes, %d nodes run in float\n", out, s.quantized_nodes,
	       (long long)s.weight_bytes, s.float_nodes);
done:
	qt_calib_table_free(t);
	qt_graph_free(g);
	return rc;
}
