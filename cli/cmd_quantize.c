/* qtool quantize: FP32 ONNX + calibration file -> .qmod. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mixed.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"

static const char quantize_help[] =
	"usage: qtool quantize MODEL --calib FILE -o OUT.qmod [--bits wXaY]\n"
	"                      [--granularity channel|tensor] [--group-size G] [--full-range]\n"
	"                      [--calib-method minmax|percentile|entropy|mse]\n"
	"                      [--data SPEC [--limit N] [--batch B] [--method LIST] [--fp32-inputs]]\n"
	"                      [--layer PATTERN=wXaY ...] [--keep-float PATTERN ...]\n"
	"                      [--input-shape NAME=D0,D1,...]\n"
	"                      [--target-size SIZE | --avg-wbits B | --max-bops N]\n"
	"                      [--candidates LIST] [--sens SENS.json]\n"
	"                      [--max-drop X --eval-data SPEC [--eval-limit N]]\n\n"
	"Quantizes an FP32 ONNX model with the activation statistics from\n"
	"'qtool calibrate' and writes a compact .qmod for the integer runtime.\n"
	"BatchNormalization is folded into the preceding Conv, Relu and Clip(0,..)\n"
	"are fused into their producer, Conv/Gemm/MatMul weights are quantized\n"
	"symmetrically and biases become int32.\n\n"
	"  --calib FILE        calibration file made for this model (required)\n"
	"  -o, --output FILE   the .qmod to write (required; never the input; '-' writes\n"
	"                      it to standard output, unless that is a terminal)\n"
	"  --bits wXaY         weight and activation bits: w8a8 (default), w4a8, w3a8,\n"
	"                      w2a8, w8a4, w4a4, w3a4, w2a4\n"
	"  --granularity G     weight scales per output channel (default) or per tensor\n"
	"  --group-size G      per-group weight scales: G consecutive inputs share one\n"
	"                      scale (implies group granularity)\n"
	"  --full-range        weights use every code of their width ([-2, 1] at 2 bits,\n"
	"                      [-8, 7] at 4) instead of the symmetric [-7, 7]\n"
	"  --calib-method M    activation range method; default: the calibration file's\n"
	"                      (ranges are recomputed from its histograms, no recalibration)\n"
	"  --data SPEC         calibration samples for the PTQ methods (dataset spec as\n"
	"                      for calibrate, e.g. fashion-mnist:train)\n"
	"  --limit N           use the first N samples of --data (default 1000; 0 = all)\n"
	"  --batch B           samples per run in the layer-wise data engine (default 32)\n"
	"  --method LIST       comma-separated weight methods:\n"
	"                        rtn              round to nearest (the default without --data)\n"
	"                        gptq             GPTQ: Hessian-aware rounding, layer by layer\n"
	"                        bias-correction  remove the mean output error of each layer\n"
	"                        mse              weight scales by MSE search (no data needed)\n"
	"                      with --data and no --method: gptq,bias-correction\n"
	"  --fp32-inputs       methods see each layer's FP32 inputs instead of the inputs\n"
	"                      of the model quantized so far (the default, sequential)\n"
	"  --layer P=wXaY      per-layer bits for layers whose node or output name matches\n"
	"                      the glob P (repeatable; later ones win); P=float keeps float\n"
	"  --keep-float P      keep matching layers in FP32 (repeatable)\n"
	"  --input-shape NAME=D0,D1,...\n"
	"                      shape of input NAME for the one dry run that learns value\n"
	"                      types; default: the shape calibration saw (symbolic dims\n"
	"                      other than the batch need one of the two). Repeatable\n"
	"  --holdout F         hold out the last fraction F of the --data samples and print,\n"
	"                      per layer, its output error on them against round-to-nearest's\n"
	"mixed precision (one setting per layer from an integer program; docs/SENSITIVITY.md):\n"
	"  --target-size SIZE  weight bytes with scales of the quantized layers at most SIZE\n"
	"                      (bytes, or 120KB, 1.5MB = x1000, x10^6; 96KiB = x1024)\n"
	"  --avg-wbits B       average weight bits (per weight, scales not counted) at most B\n"
	"  --max-bops N        bit operations per sample (MACs x weight bits x activation\n"
	"                      bits) at most N (suffixes K, M, G)\n"
	"  --candidates LIST   settings a layer may take (default w8a8,w4a8,w3a8,w2a8,w4a4;\n"
	"                      'float' keeps a layer FP32)\n"
	"  --sens FILE         sensitivities from 'qtool analyze'; without it they are\n"
	"                      measured on --data (--limit samples) first\n"
	"  --max-drop X        the smallest plan whose top-1 on --eval-data (labelled) is at\n"
	"                      most X points below FP32's: the program is solved at byte\n"
	"                      budgets found by bisection and each plan is quantized and\n"
	"                      evaluated; the best plan found is always written, and the\n"
	"                      exit code is 1 when none met the target\n"
	"  --eval-limit N      evaluate on the first N samples of --eval-data (default all)\n\n"
	"examples:\n"
	"  qtool quantize m.onnx --calib m.calib.json -o m.qmod\n"
	"  qtool quantize m.onnx --calib m.calib.json --bits w4a8 --data fashion-mnist:train \\\n"
	"        --method gptq,bias-correction -o m.w4.qmod\n"
	"  qtool quantize m.onnx --calib m.calib.json --bits w4a8 --layer 'conv1*=w8a8' -o m.qmod\n";

#define MAX_LAYER_ARGS 256

/* Progress of the weight stage: a bar on a terminal. */
static void quant_progress(void *user, int done, int total, const char *layer, const char *what)
{
	(void)user, (void)layer, (void)what;
	cli_progress("quantize: layers", done, total);
}

/* Open the calibration samples for the data engine: the model's one float
 * input, a fixed batch dimension taken as the batch size. */
static int open_data(const struct qt_graph *g, const char *model, const char *spec, long limit,
		     struct qt_quant_opts *o, struct qt_dataset **ds)
{
	if (g->n_inputs != 1)
		return cli_usage_error("quantize", "%s: the model has %d inputs; --data feeds one", model, g->n_inputs);
	const struct qt_value *in = &g->values[g->inputs[0]];
	if (in->dtype != QT_DTYPE_F32 && in->dtype != QT_DTYPE_UNDEFINED)
		return cli_usage_error("quantize", "%s: input \"%s\" is %s; --data feeds float32 samples", model, in->name,
				       qt_dtype_name(in->dtype));
	struct qt_dataset_opts dopt = {0};
	dopt.limit = limit;
	dopt.input_name = in->name;
	dopt.input_rank = in->rank > 0 ? in->rank - 1 : 0;
	dopt.input_dims = in->rank > 0 ? in->dims + 1 : NULL;
	enum qt_status st = qt_dataset_open(spec, &dopt, ds);
	if (st)
		return cli_status_error("quantize", st);
	if (in->rank >= 1 && in->dims[0] > 0) {
		if (qt_dataset_count(*ds) % in->dims[0])
			return cli_usage_error("quantize",
					       "%s: input \"%s\" has a fixed batch size of %lld, which does not divide the "
					       "%lld samples; choose --limit as a multiple of it",
					       model, in->name, (long long)in->dims[0], (long long)qt_dataset_count(*ds));
		o->batch = (int)in->dims[0];
	}
	return 0;
}

int cmd_quantize(int argc, char **argv)
{
	const char *calib = NULL, *out = NULL, *bits = NULL, *method = NULL, *gran = NULL, *group_s = NULL, *pos[1];
	const char *data = NULL, *methods = NULL, *limit_s = NULL, *batch_s = NULL, *holdout_s = NULL;
	struct cli_mixed_args mix = {0};
	struct cli_mixed_plan mplan = {0};
	const char *layers[MAX_LAYER_ARGS], *keeps[MAX_LAYER_ARGS], *shape_args[QT_MAX_INPUT_SHAPES];
	int n_shape_args = 0;
	int n_pos, rc, n_layers = 0, n_keeps = 0, full_range = 0, fp32_inputs = 0;
	long group = 0, limit = 1000, batch = 32;
	double holdout = 0;
	const struct cli_opt opts[] = {
		{.name = "--calib", .value = &calib},
		{.name = "--output", .alias = "-o", .value = &out},
		{.name = "--bits", .value = &bits},
		{.name = "--calib-method", .value = &method},
		{.name = "--granularity", .value = &gran},
		{.name = "--group-size", .value = &group_s},
		{.name = "--full-range", .flag = &full_range},
		{.name = "--data", .value = &data},
		{.name = "--limit", .value = &limit_s},
		{.name = "--batch", .value = &batch_s},
		{.name = "--method", .value = &methods},
		{.name = "--fp32-inputs", .flag = &fp32_inputs},
		{.name = "--holdout", .value = &holdout_s},
		{.name = "--layer", .list = layers, .n_list = &n_layers, .cap = MAX_LAYER_ARGS},
		{.name = "--keep-float", .list = keeps, .n_list = &n_keeps, .cap = MAX_LAYER_ARGS},
		{.name = "--input-shape", .list = shape_args, .n_list = &n_shape_args, .cap = QT_MAX_INPUT_SHAPES},
		{.name = "--target-size", .value = &mix.target_size},
		{.name = "--avg-wbits", .value = &mix.avg_wbits},
		{.name = "--max-bops", .value = &mix.max_bops},
		{.name = "--candidates", .value = &mix.candidates},
		{.name = "--sens", .value = &mix.sens},
		{.name = "--max-drop", .value = &mix.max_drop},
		{.name = "--eval-data", .value = &mix.eval_data},
		{.name = "--eval-limit", .value = &mix.eval_limit},
		{0},
	};
	if ((rc = cli_parse_args("quantize", quantize_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	if ((rc = cli_opt_long("quantize", "--group-size", group_s, 1, 65535, &group)) >= 0 ||
	    (rc = cli_opt_long("quantize", "--limit", limit_s, 0, 1L << 40, &limit)) >= 0 ||
	    (rc = cli_opt_long("quantize", "--batch", batch_s, 1, 65536, &batch)) >= 0)
		return rc;
	if (holdout_s) {
		char *end = NULL;
		holdout = strtod(holdout_s, &end);
		if (end == holdout_s || *end || !(holdout > 0 && holdout < 1))
			return cli_usage_error("quantize", "--holdout needs a fraction between 0 and 1, not '%s'",
					       holdout_s);
	}
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
				       "--bits '%s' is not supported: use wXaY with X in {8,4,3,2} and Y in {8,4}", bits);
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
	o.wfull = full_range;
	o.fp32_inputs = fp32_inputs;
	o.batch = (int)batch;
	o.overrides = layers;
	o.n_overrides = n_layers;
	o.keep_float = keeps;
	o.n_keep_float = n_keeps;
	if (methods) {
		const char *bad;
		if (qt_parse_methods(methods, &o.methods, &bad))
			return cli_usage_error("quantize",
					       "--method: unknown method '%s' (rtn, gptq, bias-correction, mse)", bad);
		if ((o.methods & QT_METHODS_DATA) && !data)
			return cli_usage_error("quantize", "--method %s needs calibration samples: add --data SPEC",
					       qt_methods_str(o.methods & QT_METHODS_DATA));
	} else if (data) {
		o.methods = QT_METHOD_GPTQ | QT_METHOD_BIASCORR;
	}
	o.holdout = holdout;
	struct qt_layer_report *rep = NULL;
	int n_rep = 0;
	o.report_out = &rep;
	o.n_report_out = &n_rep;
	if (holdout > 0 && !(o.methods & QT_METHODS_DATA))
		return cli_usage_error("quantize", "--holdout measures the methods that use --data (e.g. --method gptq)");
	if (fp32_inputs && !data)
		return cli_usage_error("quantize", "--fp32-inputs goes with --data");
	const char *ins[2] = {model, calib};
	enum qt_status st = cli_out_check(out, ins, 2);
	if (st)
		return cli_status_error("quantize", st);
	if (cli_out_is_stdout(out) && isatty(1))
		return cli_usage_error("quantize", "-o %s: refusing to write a binary .qmod to a terminal", out);

	struct qt_graph *g = NULL;
	struct qt_calib_table *t = NULL;
	struct qt_dataset *ds = NULL;
	rc = 0;
	if ((st = qt_graph_load_onnx(model, &g)) != QT_OK || (st = qt_calib_read(calib, g, &t)) != QT_OK) {
		rc = cli_status_error("quantize", st);
		goto done;
	}
	/* Dry-run shapes: what calibration saw, then what the user gave. */
	struct qt_input_shapes given = {0}, shapes = t->input_shapes;
	for (int k = 0; k < n_shape_args && !st; k++)
		st = qt_input_shapes_parse(&given, shape_args[k]);
	if (!st)
		st = qt_input_shapes_check(g, &given);
	for (int k = 0; k < given.n && !st; k++)
		st = qt_input_shapes_set(&shapes, given.s[k].name, given.s[k].rank, given.s[k].dims);
	o.input_shapes = &shapes;
	if (st) {
		rc = cli_status_error("quantize", st);
		goto done;
	}
	if (data && (o.methods & QT_METHODS_DATA)) {
		if ((rc = open_data(g, model, data, limit, &o, &ds)) != 0)
			goto done;
		o.data = ds;
		o.progress = quant_progress;
	}
	if (mix.target_size || mix.avg_wbits || mix.max_bops || mix.max_drop) {
		/* Mixed precision: the integer program's choice as overrides. */
		mix.data = data, mix.limit = limit, mix.batch = (int)batch;
		FILE *info = cli_out_is_stdout(out) ? stderr : stdout;
		if ((rc = cli_mixed_precision(model, t, &o, &mix, info, &mplan)) != 0)
			goto done;
		o.overrides = (const char *const *)mplan.overrides;
		o.n_overrides = mplan.n;
	} else if (mix.candidates || mix.sens || mix.eval_data) {
		rc = cli_usage_error("quantize", "--candidates, --sens and --eval-data go with --target-size, --avg-wbits, "
						 "--max-bops or --max-drop");
		goto done;
	}
	st = qt_quantize_graph(g, t, &o);
	cli_progress_end();
	if (st != QT_OK) {
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
	FILE *info = cli_out_is_stdout(out) ? stderr : stdout;
	fprintf(info, "wrote %s: %d quantized layers, %lld weight bytes, %d nodes run in float\n", out,
		s.quantized_nodes, (long long)s.weight_bytes, s.float_nodes);
	fprintf(info, "methods: %s", qt_methods_str(o.methods));
	if (ds)
		fprintf(info, " (%s, %lld samples of %s)", fp32_inputs ? "FP32 inputs" : "sequential",
			(long long)qt_dataset_count(ds), data);
	fprintf(info, "\n");
	for (int i = 0; i < n_rep; i++)
		if (rep[i].err >= 0)
			fprintf(info, "layer %-40s w%da%d %-20s held-out output error %.4f%% (round to nearest %.4f%%)\n",
				rep[i].name, rep[i].wbits, rep[i].abits, qt_methods_str(rep[i].methods),
				100 * rep[i].err, 100 * rep[i].err_rtn);
	if (mplan.missed) {
		fprintf(stderr, "qtool quantize: no plan met --max-drop %s; wrote the most accurate one found\n", mix.max_drop);
		rc = QT_EXIT_FAIL;
	}
done:
	cli_mixed_plan_free(&mplan);
	free(rep);
	qt_dataset_close(ds);
	qt_calib_table_free(t);
	qt_graph_free(g);
	return rc;
}
