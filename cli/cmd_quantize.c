/* qtool quantize: FP32 ONNX + calibration file -> .qmod. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qtool/calib.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"

static const char quantize_help[] =
	"usage: qtool quantize MODEL --calib FILE -o OUT.qmod [--bits wXaY]\n"
	"                      [--granularity channel|tensor] [--group-size G]\n"
	"                      [--calib-method minmax|percentile|entropy|mse]\n\n"
	"Quantizes an FP32 ONNX model with the activation statistics from\n"
	"'qtool calibrate' and writes a compact .qmod for the integer runtime.\n"
	"BatchNormalization is folded into the preceding Conv, Relu and Clip(0,..)\n"
	"are fused into their producer, Conv/Gemm/MatMul weights are quantized\n"
	"symmetrically (round to nearest) and biases become int32.\n\n"
	"  --calib FILE        calibration file made for this model (required)\n"
	"  -o, --output FILE   the .qmod to write (required; never the input; '-' writes\n"
	"                      it to standard output, unless that is a terminal)\n"
	"  --bits wXaY         weight and activation bits: w8a8 (default), w4a8, w2a8,\n"
	"                      w8a4, w4a4\n"
	"  --granularity G     weight scales per output channel (default) or per tensor\n"
	"  --group-size G      per-group weight scales: G consecutive inputs share one\n"
	"                      scale (implies group granularity)\n"
	"  --calib-method M    activation range method; default: the calibration file's\n"
	"                      (ranges are recomputed from its histograms, no recalibration)\n";

int cmd_quantize(int argc, char **argv)
{
	const char *calib = NULL, *out = NULL, *bits = NULL, *method = NULL, *gran = NULL, *group_s = NULL, *pos[1];
	int n_pos, rc;
	long group = 0;
	const struct cli_opt opts[] = {
		{.name = "--calib", .value = &calib},
		{.name = "--output", .alias = "-o", .value = &out},
		{.name = "--bits", .value = &bits},
		{.name = "--calib-method", .value = &method},
		{.name = "--granularity", .value = &gran},
		{.name = "--group-size", .value = &group_s},
		{0},
	};
	if ((rc = cli_parse_args("quantize", quantize_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	if ((rc = cli_opt_long("quantize", "--group-size", group_s, 1, 65535, &group)) >= 0)
		return rc;
	const char *model = n_pos ? pos[0] : NULL;
	bits = bits ? bits : "w8a8";
	gran = gran ? gran : "channel";
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
	enum qt_status st = cli_out_check(out, ins, 2);
	if (st)
		return cli_status_error("quantize", st);
	if (cli_out_is_stdout(out) && isatty(1))
		return cli_usage_error("quantize", "-o %s: refusing to write a binary .qmod to a terminal", out);

	struct qt_graph *g = NULL;
	struct qt_calib_table *t = NULL;
	rc = 0;
	if ((st = qt_graph_load_onnx(model, &g)) != QT_OK || (st = qt_calib_read(calib, g, &t)) != QT_OK) {
		rc = cli_status_error("quantize", st);
		goto done;
	}
	if ((st = qt_quantize_graph(g, t, &o)) != QT_OK) {
		qt_error_prefix(st, "%s", model);
		rc = cli_status_error("quantize", st);
		goto done;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	if ((st = qt_qmod_serialize(g, &buf, &len)) != QT_OK || (st = cli_out_write_all(out, buf, len)) != QT_OK) {
		free(buf);
		rc = cli_status_error("quantize", st);
		goto done;
	}
	free(buf);
	struct qt_qmod_summary s;
	qt_qmod_summarize(g, &s);
	fprintf(cli_out_is_stdout(out) ? stderr : stdout, "wrote %s: %d quantized layers, %lld weight bytes, %d nodes run in float\n", out, s.quantized_nodes,
	       (long long)s.weight_bytes, s.float_nodes);
done:
	qt_calib_table_free(t);
	qt_graph_free(g);
	return rc;
}
