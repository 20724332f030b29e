/* qtool analyze: per-layer sensitivity to each candidate setting, for mixed precision. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mixed.h"
#include "report.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"

static const char analyze_help[] =
	"usage: qtool analyze MODEL --calib FILE --data SPEC -o SENS.json [--limit N] [--batch B]\n"
	"                     [--candidates LIST] [--granularity channel|tensor] [--group-size G]\n"
	"                     [--full-range] [--calib-method M] [--method LIST] [--keep-float PATTERN ...]\n"
	"                     [--html REPORT.html] [--proxy hessian]\n\n"
	"Measures, for every layer quantize would give integer weights and every candidate\n"
	"setting, how much the model's output moves when only that layer takes that setting\n"
	"(its weights quantized, its input rounded to its grid; everything else FP32): the\n"
	"mean KL divergence of the softmax outputs from FP32's for classifiers, else the\n"
	"mean squared error. Also, per setting, the bytes each layer's weights take, the\n"
	"SQNR of the layer's output in that run, and the integer runtime's time for the\n"
	"layer on this machine (for quantize --max-latency-ms).\n"
	"'qtool quantize --sens SENS.json --target-size ...' reads the result (docs/SENSITIVITY.md).\n\n"
	"  --calib FILE        calibration file made for this model (required)\n"
	"  --data SPEC         samples to measure on, e.g. fashion-mnist:train (required)\n"
	"  -o, --output FILE   the sensitivity JSON to write (required)\n"
	"  --limit N           use the first N samples (default 1000; 0 = all)\n"
	"  --batch B           samples per run (default 32)\n"
	"  --candidates LIST   settings to measure (default w8a8,w4a8,w3a8,w2a8,w4a4):\n"
	"                      wXaY, a weight format (int4, fp4_e2m1, mxfp4, nvfp4, fp8_e4m3,\n"
	"                      ...; 8-bit activations, FORMAT:a4 for 4-bit ones), or 'float'\n"
	"                      (the layer stays FP32: 4 bytes per weight, cost 0)\n"
	"  --granularity, --group-size, --full-range, --calib-method, --keep-float\n"
	"                      as for quantize: the grid every setting uses (quantize\n"
	"                      checks it uses the same); input shapes are calibration's\n"
	"  --method LIST       weight methods to measure with (default rtn); methods that\n"
	"                      need data use --data with FP32 inputs\n"
	"  --proxy hessian     estimate instead of measure (large models): per layer and\n"
	"                      setting, the mean square of the layer's FP32 input times\n"
	"                      |W_q - W|^2 (HAWQ-V3's Hessian-trace weighting with the\n"
	"                      layer-wise Hessian X^T X / n), plus the input's rounding\n"
	"                      noise through the weights; one FP32 pass over the data\n"
	"                      (loss \"hessian-proxy\"; scripts/results_proxy.sh ranks it\n"
	"                      against the measurement)\n"
	"  --html FILE         also write a self-contained page: per-layer SQNR bars, the\n"
	"                      sensitivity heat map, predicted loss against size for the\n"
	"                      integer program and the uniform settings (docs/SENSITIVITY.md)\n";

int cmd_analyze(int argc, char **argv)
{
	const char *calib = NULL, *out = NULL, *data = NULL, *limit_s = NULL, *batch_s = NULL, *cands = NULL;
	const char *gran = NULL, *group_s = NULL, *method = NULL, *methods = NULL, *html = NULL, *proxy = NULL;
	const char *pos[1];
	const char *keeps[256];
	int n_keeps = 0, full_range = 0, n_pos, rc;
	long limit = 1000, batch = 32, group = 0;
	const struct cli_opt opts[] = {
		{.name = "--calib", .value = &calib},
		{.name = "--output", .alias = "-o", .value = &out},
		{.name = "--data", .value = &data},
		{.name = "--limit", .value = &limit_s},
		{.name = "--batch", .value = &batch_s},
		{.name = "--candidates", .value = &cands},
		{.name = "--granularity", .value = &gran},
		{.name = "--group-size", .value = &group_s},
		{.name = "--full-range", .flag = &full_range},
		{.name = "--calib-method", .value = &method},
		{.name = "--method", .value = &methods},
		{.name = "--keep-float", .list = keeps, .n_list = &n_keeps, .cap = 256},
		{.name = "--html", .value = &html},
		{.name = "--proxy", .value = &proxy},
		{0},
	};
	if ((rc = cli_parse_args("analyze", analyze_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	if ((rc = cli_opt_long("analyze", "--group-size", group_s, 1, 65535, &group)) >= 0 ||
	    (rc = cli_opt_long("analyze", "--limit", limit_s, 0, 1L << 40, &limit)) >= 0 ||
	    (rc = cli_opt_long("analyze", "--batch", batch_s, 1, 65536, &batch)) >= 0)
		return rc;
	const char *model = n_pos ? pos[0] : NULL;
	if (!model)
		return cli_usage_error("analyze", "no model given (see 'qtool analyze --help')");
	if (!calib || !data || !out)
		return cli_usage_error("analyze", "--calib FILE, --data SPEC and -o SENS.json are required");
	if (proxy && strcmp(proxy, "hessian"))
		return cli_usage_error("analyze", "--proxy '%s': the one proxy is 'hessian'", proxy);
	struct qt_bits_setting cand[CLI_MAX_CANDIDATES];
	int nc = 0;
	if ((rc = cli_parse_candidates("analyze", cands, cand, &nc)) != 0)
		return rc;
	struct qt_quant_opts o = {.wbits = 8, .abits = 8, .batch = (int)batch, .wfull = full_range,
				  .calib_method = method, .keep_float = keeps, .n_keep_float = n_keeps};
	enum qt_calib_method cm;
	if (method && qt_calib_method_parse(method, &cm))
		return cli_usage_error("analyze", "--calib-method '%s' must be minmax, percentile, entropy or mse", method);
	if (gran && strcmp(gran, "channel") && strcmp(gran, "tensor"))
		return cli_usage_error("analyze", "--granularity '%s' must be channel or tensor (or give --group-size)", gran);
	o.gran = gran && !strcmp(gran, "tensor") ? QT_GRAN_TENSOR : QT_GRAN_CHANNEL;
	if (group > 0) {
		if (o.gran == QT_GRAN_TENSOR)
			return cli_usage_error("analyze", "--group-size cannot be combined with --granularity tensor");
		o.gran = QT_GRAN_GROUP;
		o.group_size = (int)group;
	}
	if (methods) {
		const char *badm;
		if (qt_parse_methods(methods, &o.methods, &badm))
			return cli_usage_error("analyze", "--method: unknown method '%s' (rtn, gptq, bias-correction, mse)", badm);
	}
	const char *ins[4] = {model, calib, data, out};
	enum qt_status st = cli_out_check(out, ins, 3);
	if (!st && html && (cli_out_is_stdout(html) && cli_out_is_stdout(out)))
		return cli_usage_error("analyze", "-o and --html cannot both go to standard output");
	if (!st && html && !strcmp(html, out))
		return cli_usage_error("analyze", "--html %s is also the -o file", html);
	if (!st && html)
		st = cli_out_check(html, ins, 4);
	if (st)
		return cli_status_error("analyze", st);

	struct qt_graph *g = NULL;
	struct qt_calib_table *t = NULL;
	struct qt_dataset *ds = NULL;
	struct qt_sens s = {0};
	char *json = NULL;
	if ((st = qt_graph_load_onnx(model, &g)) != QT_OK || (st = qt_calib_read(calib, g, &t)) != QT_OK) {
		rc = cli_status_error("analyze", st);
		goto done;
	}
	o.input_shapes = &t->input_shapes; /* the dry run sees what calibration saw */
	if (o.methods & QT_METHODS_DATA) {
		if ((rc = cli_open_samples("analyze", model, data, limit, &ds)) != 0)
			goto done;
		o.data = ds;
	}
	if ((rc = cli_sens_measure("analyze", model, t, &o, cand, nc, data, limit, (int)batch, proxy != NULL, &s)) != 0)
		goto done;
	if ((st = qt_sens_to_json(&s, model, &json)) != QT_OK ||
	    (st = cli_out_write_all(out, json, strlen(json))) != QT_OK ||
	    (html && (st = cli_report_html(&s, model, html)) != QT_OK)) {
		rc = cli_status_error("analyze", st);
		goto done;
	}
	FILE *info = cli_out_is_stdout(out) || (html && cli_out_is_stdout(html)) ? stderr : stdout;
	fprintf(info, "wrote %s: %d layers x %d settings, loss %s\n", out, s.n_layers, s.n_settings, s.loss);
	if (html)
		fprintf(info, "wrote %s\n", html);
done:
	free(json);
	qt_sens_free(&s);
	qt_dataset_close(ds);
	qt_calib_table_free(t);
	qt_graph_free(g);
	return rc;
}
