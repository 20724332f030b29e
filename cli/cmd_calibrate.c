/* qtool calibrate: run an FP32 model over a dataset and record activation statistics. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/graph.h"
#include "qtool/rt.h"

#define DEFAULT_LIMIT 1000
#define DEFAULT_BATCH 64
/* mse: on the bundled CNN, ResNet and ViT at W8A8 it matched or beat the
 * other methods in top-1 agreement with FP32 and output SQNR (minmax a close
 * second, entropy clearly last); see the report in docs/CALIB_FORMAT.md. */
#define DEFAULT_METHOD QT_CALIB_MSE

static const char calibrate_help[] =
	"usage: qtool calibrate MODEL --data SPEC -o OUT.json [--limit N] [--offset N]\n"
	"                       [--batch B] [--seed S] [--method M] [--percentile P]\n"
	"                       [--bits B] [--bins N]\n\n"
	"Runs the FP32 ONNX MODEL over samples of a dataset and records, for every\n"
	"float32 activation (the graph input and every node output), its min, max and\n"
	"a histogram of fixed size (memory does not grow with the samples). Writes a\n"
	"calibration file (JSON, docs/CALIB_FORMAT.md) with the statistics and the\n"
	"clipping range of every method; 'qtool quantize --calib OUT.json' reads it and\n"
	"can switch method or bit width without calibrating again.\n\n"
	"  --data SPEC       fashion-mnist:train | fashion-mnist:test | idx:IMAGES[,LABELS] |\n"
	"                    npy:DIR | pb:DIR | FILE.json (see README); required.\n"
	"                    Labels are not needed. Calibrate on training data,\n"
	"                    evaluate on test data.\n"
	"  -o, --output FILE the calibration file to write (required; written atomically,\n"
	"                    never over the model; '-' writes it to standard output)\n"
	"  --limit N         use N samples (default 1000; 0 = all after --offset, as\n"
	"                    for eval)\n"
	"  --offset N        skip the first N samples (default 0)\n"
	"  --batch B         samples per model run (default 64; memory grows with B; a model\n"
	"                    with a fixed batch dimension uses its own)\n"
	"  --seed S          pick the N samples uniformly at random (without replacement,\n"
	"                    in file order) from all samples after --offset, with this seed\n"
	"                    (an integer >= 0); without --seed the first N are used\n"
	"  --method M        default range method recorded in the file (default mse):\n"
	"                      minmax      [min, max]; never clips (the safe choice)\n"
	"                      percentile  clip each side at the P-th percentile\n"
	"                      entropy     KL-divergence threshold per side (TensorRT)\n"
	"                      mse         least expected squared clipping + rounding\n"
	"                                  error for the bit width (best W8A8 results\n"
	"                                  on the bundled models)\n"
	"                    every method's range is stored; quantize --calib-method\n"
	"                    overrides the default without calibrating again\n"
	"  --percentile P    percentile for the percentile method, in 50..100 (default 99.99)\n"
	"  --bits B          activation bit width the stored entropy/mse ranges are tuned\n"
	"                    for, 2..16 (default 8; quantize recomputes them for others)\n"
	"  --bins N          histogram bins per tensor, 16..65536 (default 2048)\n";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64: a small, well-mixed generator; the seed fixes the selection. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

struct run {
	const char *model;
	struct qt_rt *rt;
	struct qt_tensor *outs;
	int n_outputs;
	int64_t done, total;
};

/* Run the model on one batch (borrowed) of n samples; the observer records. */
static enum qt_status run_batch(struct run *r, const struct qt_tensor *x, int n)
{
	enum qt_status st = qt_rt_run(r->rt, x, r->outs);
	if (st)
		return qt_error_prefix(st, "%s: samples %lld..%lld", r->model, (long long)r->done,
				       (long long)(r->done + n - 1));
	for (int k = 0; k < r->n_outputs; k++)
		qt_tensor_free(&r->outs[k]);
	r->done += n;
	cli_progress("calibrate", (long)r->done, (long)r->total);
	return QT_OK;
}

/*
 * `qtool calibrate` (argv[0] is "calibrate"). Returns the exit code: 0, 1 for
 * out-of-memory, 2 for bad usage or bad input, after one line on stderr.
 * Never writes anything but the -o file (atomically).
 */
int cmd_calibrate(int argc, char **argv)
{
	const char *spec = NULL, *out = NULL, *limit_s = NULL, *offset_s = NULL, *batch_s = NULL, *seed_s = NULL,
		   *method_s = NULL, *pct_s = NULL, *bits_s = NULL, *bins_s = NULL, *pos[1];
	int n_pos, rc;
	const struct cli_opt opts[] = {
		{.name = "--data", .value = &spec},
		{.name = "--output", .alias = "-o", .value = &out},
		{.name = "--limit", .value = &limit_s},
		{.name = "--offset", .value = &offset_s},
		{.name = "--batch", .value = &batch_s},
		{.name = "--seed", .value = &seed_s},
		{.name = "--method", .value = &method_s},
		{.name = "--percentile", .value = &pct_s},
		{.name = "--bits", .value = &bits_s},
		{.name = "--bins", .value = &bins_s},
		{0},
	};
	if ((rc = cli_parse_args("calibrate", calibrate_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	long limit = DEFAULT_LIMIT, offset = 0, batch = DEFAULT_BATCH, seed = -1, bits = 8, bins = QT_CALIB_DEFAULT_BINS;
	int batch_given = batch_s != NULL;
	double pct = QT_CALIB_DEFAULT_PERCENTILE;
	enum qt_calib_method method = DEFAULT_METHOD;
	if ((rc = cli_opt_long("calibrate", "--limit", limit_s, 0, 1L << 40, &limit)) >= 0 ||
	    (rc = cli_opt_long("calibrate", "--offset", offset_s, 0, 1L << 40, &offset)) >= 0 ||
	    (rc = cli_opt_long("calibrate", "--batch", batch_s, 1, 65536, &batch)) >= 0 ||
	    (rc = cli_opt_long("calibrate", "--seed", seed_s, 0, 0x7fffffffffffffffL, &seed)) >= 0 ||
	    (rc = cli_opt_long("calibrate", "--bits", bits_s, QT_CALIB_MIN_RANGE_BITS, QT_CALIB_MAX_RANGE_BITS, &bits)) >= 0 ||
	    (rc = cli_opt_long("calibrate", "--bins", bins_s, QT_CALIB_MIN_BINS, QT_CALIB_MAX_BINS, &bins)) >= 0)
		return rc;
	if (method_s && qt_calib_method_parse(method_s, &method))
		return cli_usage_error("calibrate", "--method '%s' must be minmax, percentile, entropy or mse", method_s);
	if (pct_s && cli_parse_double(pct_s, 50, 100, &pct))
		return cli_usage_error("calibrate", "--percentile needs a number in 50..100, not '%s'", pct_s);
	const char *model = n_pos ? pos[0] : NULL;
	if (!model)
		return cli_usage_error("calibrate", "no model given (see 'qtool calibrate --help')");
	if (!spec)
		return cli_usage_error("calibrate", "--data SPEC is required (e.g. --data fashion-mnist:train)");
	if (!out)
		return cli_usage_error("calibrate", "-o OUT.json is required");

	/* Check the output before the long part: never the model, a writable folder. */
	const char *ins[2] = {model, spec};
	enum qt_status st = cli_out_check(out, ins, 2);
	if (st)
		return cli_status_error("calibrate", st);

	struct qt_graph *g = NULL;
	struct qt_calib *c = NULL;
	struct qt_calib_table *table = NULL;
	struct qt_dataset *ds = NULL;
	struct qt_tensor x = {0}, xb = {0};
	struct run r = {.model = model};
	rc = 0;
	double t0 = now_s();
	if ((st = qt_graph_load_onnx(model, &g)) != QT_OK) {
		rc = cli_status_error("calibrate", st);
		goto done;
	}
	if (g->n_inputs != 1) {
		rc = cli_usage_error("calibrate", "%s: the model has %d inputs; calibrate feeds one input from --data",
				     model, g->n_inputs);
		goto done;
	}
	const struct qt_value *in = &g->values[g->inputs[0]];
	if (in->dtype != QT_DTYPE_F32 && in->dtype != QT_DTYPE_UNDEFINED) {
		rc = cli_usage_error("calibrate", "%s: input \"%s\" is %s; calibrate feeds float32 samples", model,
				     in->name, qt_dtype_name(in->dtype));
		goto done;
	}
	/* A fixed batch dimension decides the batch size. */
	if (in->rank >= 1 && in->dims[0] > 0 && in->dims[0] != batch) {
		if (batch_given) {
			rc = cli_usage_error("calibrate", "%s: input \"%s\" has a fixed batch size of %lld; use --batch %lld",
					     model, in->name, (long long)in->dims[0], (long long)in->dims[0]);
			goto done;
		}
		if (in->dims[0] > 65536) {
			rc = cli_usage_error("calibrate", "%s: input \"%s\" has a batch size of %lld, above 65536", model,
					     in->name, (long long)in->dims[0]);
			goto done;
		}
		batch = (long)in->dims[0];
	}
	struct qt_calib_opts copt = {.bins = (int)bins};
	if ((st = qt_calib_new(g, &copt, &c)) != QT_OK || (st = qt_rt_new(g, &r.rt)) != QT_OK) {
		qt_error_prefix(st, "%s", model);
		rc = cli_status_error("calibrate", st);
		goto done;
	}
	qt_rt_set_observer(r.rt, qt_calib_observer, c);
	r.n_outputs = g->n_outputs;
	r.outs = calloc((size_t)g->n_outputs + 1, sizeof *r.outs);
	if (!r.outs) {
		rc = cli_status_error("calibrate", qt_error(QT_E_NOMEM, "out of memory"));
		goto done;
	}

	struct qt_dataset_opts dopt = {0};
	dopt.offset = offset;
	dopt.limit = seed >= 0 ? 0 : limit; /* a random pick streams everything after the offset */
	dopt.input_name = in->name;
	dopt.input_rank = in->rank > 0 ? in->rank - 1 : 0;
	dopt.input_dims = in->rank > 0 ? in->dims + 1 : NULL;
	if ((st = qt_dataset_open(spec, &dopt, &ds)) != QT_OK) {
		rc = cli_status_error("calibrate", st);
		goto done;
	}
	int64_t avail = qt_dataset_count(ds);
	r.total = limit > 0 && limit < avail ? limit : avail;
	if (in->rank >= 1 && in->dims[0] > 0 && r.total % in->dims[0] != 0) {
		rc = cli_usage_error("calibrate",
				     "%s: input \"%s\" has a fixed batch size of %lld, which does not divide the %lld "
				     "samples; choose --limit as a multiple of it",
				     model, in->name, (long long)in->dims[0], (long long)r.total);
		goto done;
	}

	if (seed < 0) {
		for (;;) {
			int n;
			if ((st = qt_dataset_next(ds, (int)batch, &x, NULL, &n)) != QT_OK) {
				rc = cli_status_error("calibrate", st);
				goto done;
			}
			if (n == 0)
				break;
			if ((st = run_batch(&r, &x, n)) != QT_OK) {
				cli_progress_end();
				rc = cli_status_error("calibrate", st);
				goto done;
			}
		}
	} else {
		/* Selection sampling (Knuth's Algorithm S): the t-th of `avail`
		 * samples is taken with probability (wanted - taken) / (avail - t),
		 * which gives every subset of r.total samples the same chance. The
		 * picks are copied into xb and run once it holds `batch`. */
		uint64_t rs = (uint64_t)seed;
		int64_t t = 0, taken = 0;
		int fill = 0;
		size_t row = 0;
		for (;;) {
			int n;
			if ((st = qt_dataset_next(ds, (int)batch, &x, NULL, &n)) != QT_OK) {
				rc = cli_status_error("calibrate", st);
				goto done;
			}
			if (n == 0)
				break;
			if (!xb.data) {
				int64_t dims[QT_MAX_RANK];
				memcpy(dims, x.dims, sizeof dims);
				dims[0] = batch;
				if ((st = qt_tensor_alloc(&xb, QT_DTYPE_F32, x.rank, dims)) != QT_OK) {
					rc = cli_status_error("calibrate", st);
					goto done;
				}
				row = xb.nbytes / (size_t)batch;
			}
			for (int k = 0; k < n && taken < r.total; k++, t++) {
				if ((double)(avail - t) * rng_unit(&rs) >= (double)(r.total - taken))
					continue;
				memcpy((char *)xb.data + (size_t)fill * row, (const char *)x.data + (size_t)k * row, row);
				taken++;
				if (++fill == batch) {
					if ((st = run_batch(&r, &xb, fill)) != QT_OK) {
						cli_progress_end();
						rc = cli_status_error("calibrate", st);
						goto done;
					}
					fill = 0;
				}
			}
			if (taken == r.total)
				break;
		}
		if (fill > 0) {
			xb.dims[0] = fill;
			xb.nbytes = (size_t)fill * row;
			if ((st = run_batch(&r, &xb, fill)) != QT_OK) {
				cli_progress_end();
				rc = cli_status_error("calibrate", st);
				goto done;
			}
			xb.dims[0] = batch;
			xb.nbytes = (size_t)batch * row;
		}
	}
	cli_progress_end();

	char dataset_desc[4096];
	snprintf(dataset_desc, sizeof dataset_desc, "%s", spec);
	if (offset || limit || seed >= 0) {
		size_t o = strlen(dataset_desc);
		if (offset)
			o += (size_t)snprintf(dataset_desc + o, sizeof dataset_desc - o, " --offset %ld", offset);
		if (o < sizeof dataset_desc)
			o += (size_t)snprintf(dataset_desc + o, sizeof dataset_desc - o, " --limit %ld", limit);
		if (seed >= 0 && o < sizeof dataset_desc)
			snprintf(dataset_desc + o, sizeof dataset_desc - o, " --seed %ld", seed);
	}
	struct qt_calib_meta meta = {
		.model = model, .dataset = dataset_desc, .samples = r.done, .default_method = method,
		.bits = (int)bits, .percentile = pct,
	};
	char *json = NULL;
	if ((st = qt_calib_finish(c, &meta, &table)) != QT_OK || (st = qt_calib_to_json(table, &json)) != QT_OK) {
		rc = cli_status_error("calibrate", st);
		goto done;
	}
	size_t jlen = strlen(json);
	json[jlen] = '\n'; /* replaces the NUL: written as jlen + 1 bytes */
	st = cli_out_write_all(out, json, jlen + 1);
	free(json);
	if (st) {
		rc = cli_status_error("calibrate", st);
		goto done;
	}
	fprintf(cli_out_is_stdout(out) ? stderr : stdout, "wrote %s: %d tensors, %lld samples, %.2f s (default method %s, %ld bits)\n", out, table->n_tensors,
	       (long long)r.done, now_s() - t0, qt_calib_method_name(method), bits);
done:
	if (r.outs)
		for (int k = 0; k < r.n_outputs; k++)
			qt_tensor_free(&r.outs[k]);
	free(r.outs);
	qt_tensor_free(&x);
	qt_tensor_free(&xb);
	qt_dataset_close(ds);
	qt_calib_table_free(table);
	qt_rt_free(r.rt);
	qt_calib_free(c);
	qt_graph_free(g);
	return rc;
}
