/* qtool quantize: FP32 ONNX + calibration file -> .qmod. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mixed.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/model.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"

static const char quantize_help[] =
	"usage: qtool quantize MODEL --calib FILE -o OUT.qmod [--bits wXaY]\n"
	"                      [--granularity channel|tensor] [--group-size G] [--full-range]\n"
	"                      [--calib-method minmax|percentile|entropy|mse]\n"
	"                      [--data SPEC [--limit N] [--batch B] [--method LIST] [--fp32-inputs]\n"
	"                       [--adaround-iters N] [--holdout F]]\n"
	"                      [--layer PATTERN=wXaY ...] [--keep-float PATTERN ...]\n"
	"                      [--weights FORMAT] [--acts FORMAT] [--mx-scale floor|ceil|best]\n"
	"                      [--input-shape NAME=D0,D1,...]\n"
	"                      [--target-size SIZE | --avg-wbits B | --max-bops N | --max-latency-ms T]\n"
	"                      [--candidates LIST] [--sens SENS.json]\n"
	"                      [--max-drop X | --min-sqnr DB] --eval-data SPEC [--eval-limit N]]\n\n"
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
	"  --method LIST       comma-separated methods:\n"
	"                        rtn              round to nearest (the default without --data)\n"
	"                        gptq             GPTQ: Hessian-aware rounding, layer by layer\n"
	"                        adaround         AdaRound: learned up/down rounding, layer by\n"
	"                                         layer (instead of gptq)\n"
	"                        bias-correction  remove the mean output error of each layer\n"
	"                        mse              weight scales by MSE search (no data needed)\n"
	"                        cle              cross-layer equalization of Conv/Gemm pairs\n"
	"                                         joined by Relu (ReLU6 pairs are skipped: the\n"
	"                                         clip would differ per channel)\n"
	"                        smoothquant=A    SmoothQuant with alpha A in [0, 1], or\n"
	"                        smoothquant=auto alpha searched per layer input\n"
	"                        act-range        each layer's input range chosen on that\n"
	"                                         layer's output error (multiples 0.3..1.2\n"
	"                                         of the calibrated range, sequential);\n"
	"                                         helps most at 4-bit activations\n"
	"                      cle and smoothquant rewrite the float graph (same function)\n"
	"                      and measure the activation ranges again on --data\n"
	"                        auto             try gptq,bias-correction alone and with mse,\n"
	"                                         act-range, cle, smoothquant=auto, and\n"
	"                                         adaround instead of gptq,\n"
	"                                         each fitted on 80% of --data; keep\n"
	"                                         the least output error on the other 20%\n"
	"                      with --data and no --method: gptq,bias-correction\n"
	"  --adaround-iters N  AdaRound's optimisation steps per layer (default 1000)\n"
	"  --fp32-inputs       methods see each layer's FP32 inputs instead of the inputs\n"
	"                      of the model quantized so far (the default, sequential)\n"
	"  --no-fp32-target    sequential gptq/adaround fit each layer to its own FP32\n"
	"                      weights on the quantized inputs (W x_q) instead of to the\n"
	"                      FP32 model's output (W x_fp, the default: a paired FP32 run)\n"
	"  --layer P=wXaY      per-layer bits for layers whose node or output name matches\n"
	"                      the glob P (repeatable; later ones win); P=float keeps float;\n"
	"                      P=FORMAT a weight format (below), P=FORMAT:a4 with 4-bit acts\n"
	"  --keep-float P      keep matching layers in FP32 (repeatable)\n"
	"  --input-shape NAME=D0,D1,...\n"
	"                      shape of input NAME for the one dry run that learns value\n"
	"                      types; default: the shape calibration saw (symbolic dims\n"
	"                      other than the batch need one of the two). Repeatable\n"
	"  --holdout F         hold out the last fraction F of the --data samples and print,\n"
	"                      per layer, its output error on them against round-to-nearest's\n"
	"  --weights FORMAT    weight number format: int8, int4, int3, int2 (as --bits), fp8_e4m3,\n"
	"                      fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1 (per channel or --group-size\n"
	"                      scales), mxint8, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3,\n"
	"                      mxfp4 (blocks of 32, E8M0 scales), nvfp4 (blocks of 16). Formats\n"
	"                      other than int are decoded to FP32 at load; of the methods, gptq\n"
	"                      and bias-correction apply to them (the rest round to nearest)\n"
	"  --acts FORMAT       activation format of every layer's input: int8, int4 (as --bits),\n"
	"                      or a format above (the input is rounded to it in float)\n"
	"  --mx-scale RULE     MX shared exponent: floor (the spec's; default), ceil (never\n"
	"                      clips) or best (per block, the smaller squared error)\n\n"
	"mixed precision (one setting per layer from an integer program; docs/SENSITIVITY.md):\n"
	"  --target-size SIZE  weight bytes with scales of the quantized layers at most SIZE\n"
	"                      (bytes, or 120KB, 1.5MB = x1000, x10^6; 96KiB = x1024)\n"
	"  --avg-wbits B       average weight bits (per weight, scales not counted) at most B\n"
	"  --max-bops N        bit operations per sample (MACs x weight bits x activation\n"
	"                      bits) at most N (suffixes K, M, G)\n"
	"  --max-latency-ms T  the weighted layers' integer-runtime time per sample at most\n"
	"                      T ms, by the per-layer times analyze measured on this machine\n"
	"  --candidates LIST   settings a layer may take (default w8a8,w4a8,w3a8,w2a8,w4a4):\n"
	"                      wXaY, a weight format (int4, fp4_e2m1, mxfp4, nvfp4, fp8_e4m3,\n"
	"                      ...; 8-bit activations, FORMAT:a4 for 4-bit ones), or 'float'\n"
	"  --sens FILE         sensitivities from 'qtool analyze'; without it they are\n"
	"                      measured on --data (--limit samples) first\n"
	"  --max-drop X        the smallest plan whose top-1 on --eval-data (labelled) is at\n"
	"                      most X points below FP32's: the program is solved at byte\n"
	"                      budgets found by bisection and each plan is quantized and\n"
	"                      evaluated; the best plan found is always written, and the\n"
	"                      exit code is 1 when none met the target\n"
	"  --min-sqnr DB       the same target on the output SQNR against the FP32 model\n"
	"                      (at least DB dB on --eval-data; labels not needed)\n"
	"  --eval-limit N      evaluate on the first N samples of --eval-data (default all)\n\n"
	"examples:\n"
	"  qtool quantize m.onnx --calib m.calib.json -o m.qmod\n"
	"  qtool quantize m.onnx --calib m.calib.json --bits w4a8 --data fashion-mnist:train \\\n"
	"        --method gptq,bias-correction -o m.w4.qmod\n"
	"  qtool quantize vit.onnx --calib vit.calib.json --bits w4a8 --data fashion-mnist:train \\\n"
	"        --method smoothquant=auto,gptq,bias-correction -o vit.w4.qmod\n"
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
static int open_data(const struct qt_graph *g, const char *model, const char *spec, long offset, long limit,
		     struct qt_quant_opts *o, struct qt_dataset **ds)
{
	if (g->n_inputs != 1)
		return cli_usage_error("quantize", "%s: the model has %d inputs; --data feeds one", model, g->n_inputs);
	const struct qt_value *in = &g->values[g->inputs[0]];
	if (in->dtype != QT_DTYPE_F32 && in->dtype != QT_DTYPE_UNDEFINED)
		return cli_usage_error("quantize", "%s: input \"%s\" is %s; --data feeds float32 samples", model, in->name,
				       qt_dtype_name(in->dtype));
	struct qt_dataset_opts dopt = {0};
	dopt.offset = offset;
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

/* What the graph rewrites did, and why pairs or layers were left alone. */
static void print_rewrites(FILE *f, const struct qt_rewrite_report *rw, const struct qt_quant_opts *o)
{
	if (rw->cle_done) {
		fprintf(f, "cle: %d layer pairs equalized (%d sweeps, last max |log s| %.1e)", rw->cle.pairs,
			rw->cle.iterations, rw->cle.last_max_log_s);
		if (rw->cle.skipped_clip)
			fprintf(f, "; %d skipped: a fused Clip(0, hi) (ReLU6) would have to clip channel i at hi/s_i, "
				   "and the integer runtime clamps a whole output tensor at one bound",
				rw->cle.skipped_clip);
		if (rw->cle.skipped_shape)
			fprintf(f, "; %d skipped: shared or non-constant weights, or a path through an op that "
				   "does not commute with per-channel scaling",
				rw->cle.skipped_shape);
		fprintf(f, "\n");
	}
	if (rw->sq_done) {
		fprintf(f, "smoothquant: %d layers smoothed", rw->sq.layers);
		if (rw->sq.layers && o->sq_alpha >= 0)
			fprintf(f, " (alpha %.2f)", o->sq_alpha);
		else if (rw->sq.layers)
			fprintf(f, " (alpha searched per input: %.1f .. %.1f)", rw->sq.alpha_min, rw->sq.alpha_max);
		if (rw->sq.unchanged)
			fprintf(f, "; %d left as they were: no alpha lowered their output error", rw->sq.unchanged);
		if (rw->sq.skipped)
			fprintf(f, "; %d skipped: their input's producer cannot absorb 1/s (only LayerNormalization "
				   "and Mul by a constant can), or a reader of that input is not a MatMul or Gemm",
				rw->sq.skipped);
		fprintf(f, "\n");
	}
	if (rw->ar_done) {
		fprintf(f, "act-range: %d activation ranges searched on their layer's output error, %d moved", rw->ar.searched,
			rw->ar.changed);
		if (rw->ar.changed)
			fprintf(f, " (x%.2f .. x%.2f of the calibrated range; their layers' activation error x%.2f on average)",
				rw->ar.alpha_min, rw->ar.alpha_max, rw->ar.err_ratio_sum / rw->ar.changed);
		fprintf(f, "\n");
	}
	if (rw->recalibrated)
		fprintf(f, "activation ranges: measured again on the rewritten graph (%lld samples)\n",
			(long long)rw->recalibrated);
	else if (rw->cle_done || rw->sq_done)
		fprintf(f, "activation ranges: the calibration file's (nothing was rewritten)\n");
}

/* ---- --method auto ---- */

/* What auto tries, in this order (a tie keeps the earlier). */
static const char *const auto_candidates[] = {
	"gptq,bias-correction",
	"mse,gptq,bias-correction",
	"act-range,gptq,bias-correction",
	"cle,gptq,bias-correction",
	"smoothquant=auto,gptq,bias-correction",
	"adaround,bias-correction",
	NULL,
};

/*
 * Output error of quantized graph q against the FP32 model on every sample
 * of ds: sum (y_q - y)^2 / sum y^2 over the first output. q runs in the
 * integer runtime, as the .qmod will: it is written to a temporary file
 * (removed at once) and opened like one.
 */
static enum qt_status heldout_output_error(const struct qt_graph *q, const char *model, struct qt_dataset *ds,
					   int batch, double *err_out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/qtool-auto-XXXXXX", dir && *dir ? dir : "/tmp");
	enum qt_status st = qt_qmod_serialize(q, &buf, &len);
	if (st)
		return st;
	int fd = mkstemp(path);
	if (fd < 0) {
		free(buf);
		return qt_error(QT_E_IO, "%s: cannot create a temporary file", path);
	}
	FILE *f = fdopen(fd, "wb");
	int ok = f && fwrite(buf, 1, len, f) == len;
	ok = f && fclose(f) == 0 && ok;
	free(buf);
	if (!ok) {
		unlink(path);
		return qt_error(QT_E_IO, "%s: cannot write the candidate model", path);
	}
	struct qt_sqnr_acc acc = {0};
	st = cli_output_error(path, model, ds, batch, &acc);
	unlink(path);
	*err_out = acc.sig > 0 ? acc.noise / acc.sig : acc.noise;
	return st;
}

/*
 * --method auto: quantize with each candidate on the first 80% of the
 * --data samples and measure the output error of the result on the last 20%
 * (whole batches, at least one); set o's methods to the candidate with the least. A
 * rewrite that finds nothing to rewrite is the candidate without it, and is
 * skipped. Returns 0, or an exit code after a message.
 */
static int auto_pick(const char *model, const struct qt_calib_table *t, const char *spec, long limit,
		     struct qt_quant_opts *o, FILE *info)
{
	struct qt_graph *g = NULL;
	struct qt_dataset *all = NULL, *fit = NULL, *hold = NULL;
	int rc = 0, best = -1;
	double best_err = 0;
	enum qt_status st = qt_graph_load_onnx(model, &g);
	if (st)
		return cli_status_error("quantize", st);
	if ((rc = open_data(g, model, spec, 0, limit, o, &all)) != 0)
		goto done;
	/* A fifth of the samples in whole batches, at least one batch. */
	int64_t n = qt_dataset_count(all), b = o->batch > 0 ? o->batch : 32, nh = n / 5 - (n / 5) % b;
	nh = nh < b ? b : nh;
	if (n - nh < b) {
		rc = cli_usage_error("quantize", "--method auto holds out a fifth of the --data samples in whole batches "
				     "of %lld (at least one): %lld samples are too few", (long long)b, (long long)n);
		goto done;
	}
	if ((rc = open_data(g, model, spec, 0, (long)(n - nh), o, &fit)) != 0 ||
	    (rc = open_data(g, model, spec, (long)(n - nh), (long)nh, o, &hold)) != 0)
		goto done;
	qt_graph_free(g);
	g = NULL;
	for (int i = 0; auto_candidates[i]; i++) {
		struct qt_quant_opts c = *o;
		struct qt_rewrite_report rw = {0};
		const char *bad;
		qt_parse_method_list(auto_candidates[i], &c, &bad);
		c.data = fit;
		c.report_out = NULL;
		c.n_report_out = NULL;
		c.holdout = 0;
		c.progress = NULL;
		c.rewrite_out = &rw;
		double err = 0;
		if ((st = qt_graph_load_onnx(model, &g)) == QT_OK && (st = qt_quantize_graph(g, t, &c)) == QT_OK) {
			if (((c.methods & QT_METHOD_CLE) && rw.cle.pairs == 0) ||
			    ((c.methods & QT_METHOD_SMOOTHQUANT) && rw.sq.layers == 0)) {
				fprintf(info, "auto: %-40s nothing to rewrite: the same as without\n", auto_candidates[i]);
				qt_graph_free(g);
				g = NULL;
				continue;
			}
			st = heldout_output_error(g, model, hold, (int)b, &err);
		}
		qt_graph_free(g);
		g = NULL;
		if (st) {
			fprintf(info, "auto: %-40s failed: %s\n", auto_candidates[i], qt_error_msg());
			continue;
		}
		fprintf(info, "auto: %-40s held-out output error %.4f%% (SQNR %.2f dB)\n", auto_candidates[i], 100 * err,
			err > 0 ? -10 * log10(err) : INFINITY);
		if (best < 0 || err < best_err)
			best = i, best_err = err;
	}
	if (best < 0) {
		rc = cli_usage_error("quantize", "--method auto: every candidate failed");
		goto done;
	}
	const char *bad;
	qt_parse_method_list(auto_candidates[best], o, &bad);
	fprintf(info, "auto: picked %s (fitted on %lld samples, judged on the other %lld); quantizing with it on all %lld\n",
		auto_candidates[best], (long long)(n - nh), (long long)nh, (long long)n);
done:
	qt_graph_free(g);
	qt_dataset_close(all);
	qt_dataset_close(fit);
	qt_dataset_close(hold);
	return rc;
}

/* --weights, --acts (over --bits) and --mx-scale into o; -1 when fine, else
 * the exit code of a usage error. */
static int parse_formats(const char *w, const char *a, const char *mx, struct qt_quant_opts *o)
{
	int bits;
	o->mx_rule = QT_MX_FLOOR; /* measured best on the bundled models (docs/RESULTS.md) */
	if (w && qt_numfmt_parse(w, &o->wfmt, &bits))
		return cli_usage_error("quantize", "--weights '%s' is not one of %s", w, qt_numfmt_names());
	if (w)
		o->wbits = bits;
	if (a && (qt_numfmt_parse(a, &o->afmt, &bits) || (o->afmt == QT_FMT_INT && bits != 8 && bits != 4)))
		return cli_usage_error("quantize", "--acts '%s' is not int8, int4 or a format of %s", a, qt_numfmt_names());
	if (a && o->afmt == QT_FMT_INT)
		o->abits = bits;
	if (mx && !strcmp(mx, "ceil"))
		o->mx_rule = QT_MX_CEIL;
	else if (mx && !strcmp(mx, "best"))
		o->mx_rule = QT_MX_BEST;
	else if (mx && strcmp(mx, "floor"))
		return cli_usage_error("quantize", "--mx-scale '%s' must be floor, ceil or best", mx);
	return -1;
}

int cmd_quantize(int argc, char **argv)
{
	const char *calib = NULL, *out = NULL, *bits = NULL, *method = NULL, *gran = NULL, *group_s = NULL, *pos[1];
	const char *data = NULL, *methods = NULL, *limit_s = NULL, *batch_s = NULL, *holdout_s = NULL, *ar_s = NULL;
	const char *wfmt_s = NULL, *afmt_s = NULL, *mx_s = NULL;
	struct cli_mixed_args mix = {0};
	struct cli_mixed_plan mplan = {0};
	const char *layers[MAX_LAYER_ARGS], *keeps[MAX_LAYER_ARGS], *shape_args[QT_MAX_INPUT_SHAPES];
	int n_shape_args = 0;
	int n_pos, rc, n_layers = 0, n_keeps = 0, full_range = 0, fp32_inputs = 0, no_fp32_target = 0;
	long group = 0, limit = 1000, batch = 32, adaround_iters = 0;
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
		{.name = "--no-fp32-target", .flag = &no_fp32_target},
		{.name = "--holdout", .value = &holdout_s},
		{.name = "--adaround-iters", .value = &ar_s},
		{.name = "--weights", .value = &wfmt_s},
		{.name = "--acts", .value = &afmt_s},
		{.name = "--mx-scale", .value = &mx_s},
		{.name = "--layer", .list = layers, .n_list = &n_layers, .cap = MAX_LAYER_ARGS},
		{.name = "--keep-float", .list = keeps, .n_list = &n_keeps, .cap = MAX_LAYER_ARGS},
		{.name = "--input-shape", .list = shape_args, .n_list = &n_shape_args, .cap = QT_MAX_INPUT_SHAPES},
		{.name = "--target-size", .value = &mix.target_size},
		{.name = "--avg-wbits", .value = &mix.avg_wbits},
		{.name = "--max-bops", .value = &mix.max_bops},
		{.name = "--max-latency-ms", .value = &mix.max_latency_ms},
		{.name = "--candidates", .value = &mix.candidates},
		{.name = "--sens", .value = &mix.sens},
		{.name = "--max-drop", .value = &mix.max_drop},
		{.name = "--min-sqnr", .value = &mix.min_sqnr},
		{.name = "--eval-data", .value = &mix.eval_data},
		{.name = "--eval-limit", .value = &mix.eval_limit},
		{0},
	};
	if ((rc = cli_parse_args("quantize", quantize_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	if ((rc = cli_opt_long("quantize", "--group-size", group_s, 1, 65535, &group)) >= 0 ||
	    (rc = cli_opt_long("quantize", "--limit", limit_s, 0, 1L << 40, &limit)) >= 0 ||
	    (rc = cli_opt_long("quantize", "--batch", batch_s, 1, 65536, &batch)) >= 0 ||
	    (rc = cli_opt_long("quantize", "--adaround-iters", ar_s, 1, 1000000, &adaround_iters)) >= 0)
		return rc;
	if (holdout_s) {
		if (cli_parse_double(holdout_s, 0, 1, &holdout) || !(holdout > 0 && holdout < 1))
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
	if ((rc = parse_formats(wfmt_s, afmt_s, mx_s, &o)) >= 0)
		return rc;
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
	if (qt_numfmt_block(o.wfmt) && (group > 0 || o.gran == QT_GRAN_TENSOR))
		return cli_usage_error("quantize", "--weights %s has its own blocks of %d: no --group-size or --granularity",
				       qt_numfmt_name(o.wfmt), qt_numfmt_block(o.wfmt));
	enum qt_calib_method m;
	if (method && qt_calib_method_parse(method, &m))
		return cli_usage_error("quantize", "--calib-method '%s' must be minmax, percentile, entropy or mse",
				       method);
	o.calib_method = method;
	o.command_line = cli_command_line();
	o.wfull = full_range;
	o.fp32_inputs = fp32_inputs;
	o.no_fp32_target = no_fp32_target;
	o.batch = (int)batch;
	o.overrides = layers;
	o.n_overrides = n_layers;
	o.keep_float = keeps;
	o.n_keep_float = n_keeps;
	int pick_auto = methods && !strcmp(methods, "auto");
	if (pick_auto) {
		if (!data)
			return cli_usage_error("quantize", "--method auto tries methods on calibration samples: add --data SPEC");
		o.methods = QT_METHOD_GPTQ | QT_METHOD_BIASCORR; /* checked below like any data method */
	} else if (methods) {
		const char *bad;
		if (qt_parse_method_list(methods, &o, &bad))
			return cli_usage_error("quantize",
					       "--method: unknown method '%s' (rtn, gptq, adaround, bias-correction, mse, "
					       "cle, smoothquant=ALPHA|auto)",
					       bad);
		if ((o.methods & QT_METHODS_NEED_DATA) && !data)
			return cli_usage_error("quantize", "--method %s needs calibration samples: add --data SPEC",
					       qt_methods_str(o.methods & QT_METHODS_NEED_DATA));
		if ((o.methods & QT_METHOD_GPTQ) && (o.methods & QT_METHOD_ADAROUND))
			return cli_usage_error("quantize", "--method: gptq and adaround both choose the codes; pick one");
	} else if (data) {
		o.methods = QT_METHOD_GPTQ | QT_METHOD_BIASCORR;
	}
	o.holdout = holdout;
	struct qt_layer_report *rep = NULL;
	struct qt_rewrite_report rw = {0};
	int n_rep = 0;
	o.rewrite_out = &rw;
	o.report_out = &rep;
	o.n_report_out = &n_rep;
	if (adaround_iters && !(o.methods & QT_METHOD_ADAROUND) && !pick_auto)
		return cli_usage_error("quantize", "--adaround-iters goes with --method adaround (or auto)");
	o.adaround_iters = (int)adaround_iters;
	if (holdout > 0 && !(o.methods & QT_METHODS_DATA))
		return cli_usage_error("quantize", "--holdout measures the methods that use --data (e.g. --method gptq)");
	if (fp32_inputs && !data)
		return cli_usage_error("quantize", "--fp32-inputs goes with --data");
	if (no_fp32_target && (!data || fp32_inputs))
		return cli_usage_error("quantize", "--no-fp32-target changes the sequential mode: it goes with --data "
				       "and without --fp32-inputs");
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
	FILE *info = cli_out_is_stdout(out) ? stderr : stdout;
	if (pick_auto && (rc = auto_pick(model, t, data, limit, &o, info)) != 0)
		goto done;
	if (data && (o.methods & QT_METHODS_NEED_DATA)) {
		if ((rc = open_data(g, model, data, 0, limit, &o, &ds)) != 0)
			goto done;
		o.data = ds;
		o.data_spec = data;
		o.progress = quant_progress;
	}
	if (mix.target_size || mix.avg_wbits || mix.max_bops || mix.max_latency_ms || mix.max_drop ||
	    mix.min_sqnr) {
		/* Mixed precision: the integer program's choice as overrides. */
		mix.data = data, mix.limit = limit, mix.batch = (int)batch;
		FILE *info = cli_out_is_stdout(out) ? stderr : stdout;
		if ((rc = cli_mixed_precision(model, t, &o, &mix, info, &mplan)) != 0)
			goto done;
		o.overrides = (const char *const *)mplan.overrides;
		o.n_overrides = mplan.n;
	} else if (mix.candidates || mix.sens || mix.eval_data) {
		rc = cli_usage_error("quantize", "--candidates, --sens and --eval-data go with --target-size, --avg-wbits, "
						 "--max-bops, --max-latency-ms, --max-drop or --min-sqnr");
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
	fprintf(info, "wrote %s: %d quantized layers, %lld weight bytes, %d nodes run in float\n", out,
		s.quantized_nodes, (long long)s.weight_bytes, s.float_nodes);
	fprintf(info, "methods: %s", qt_methods_str(o.methods));
	if (ds)
		fprintf(info, " (%s, %lld samples of %s)", fp32_inputs ? "FP32 inputs" : "sequential",
			(long long)qt_dataset_count(ds), data);
	fprintf(info, "\n");
	print_rewrites(info, &rw, &o);
	for (int i = 0; i < n_rep; i++)
		if (rep[i].err >= 0)
			fprintf(info, "layer %-40s w%da%d %-20s held-out output error %.4f%% (round to nearest %.4f%%)\n",
				rep[i].name, rep[i].wbits, rep[i].abits, qt_methods_str(rep[i].methods),
				100 * rep[i].err, 100 * rep[i].err_rtn);
	if (mplan.missed) {
		fprintf(stderr, "qtool quantize: no plan met %s %s; wrote the most accurate one found\n",
			mix.max_drop ? "--max-drop" : "--min-sqnr", mix.max_drop ? mix.max_drop : mix.min_sqnr);
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
