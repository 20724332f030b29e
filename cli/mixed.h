/* Mixed precision in the CLI (cli/mixed.c): shared by analyze and quantize. */
#ifndef QT_CLI_MIXED_H
#define QT_CLI_MIXED_H

#include <stdio.h>

#include "qtool/bitalloc.h"

struct qt_dataset;
struct qt_calib_table;

/* The candidates when --candidates is not given, and how many may be. */
extern const char cli_default_candidates[];
#define CLI_MAX_CANDIDATES 16

/* Parse --candidates LIST (NULL: the default) into cand (CLI_MAX_CANDIDATES
 * entries) and *n_out; 0, or the exit code after one error line. */
int cli_parse_candidates(const char *cmd, const char *list, struct qt_bits_setting *cand, int *n_out);

/* Open --data SPEC (first `limit` samples, 0 = all) for the single input of
 * the ONNX model at `model`, checked against its shape. 0, or the exit code
 * after one error line. */
int cli_open_samples(const char *cmd, const char *model, const char *spec, long limit, struct qt_dataset **ds);

/* Run the model file at path and the FP32 model over every sample of ds
 * (rewound; batches of `batch`) and add the first output of the one against
 * the other's into *acc. Errors name the FP32 model. */
enum qt_status cli_output_error(const char *path, const char *model, struct qt_dataset *ds, int batch,
				struct qt_sqnr_acc *acc);

/* Measure sensitivities (qt_sens_measure; with proxy, estimate them by the
 * Hessian-trace proxy) on `data` with progress on stderr; 0 or the exit code
 * after one error line. */
int cli_sens_measure(const char *cmd, const char *model, const struct qt_calib_table *calib,
		     const struct qt_quant_opts *qo, const struct qt_bits_setting *settings, int n_settings,
		     const char *data, long limit, int batch, int proxy, struct qt_sens *out);

/* quantize's budget options, as given (NULL when absent). */
struct cli_mixed_args {
	const char *target_size, *avg_wbits, *max_bops, *max_latency_ms, *candidates, *sens, *data;
	const char *max_drop, *eval_data, *eval_limit; /* accuracy-target search */
	const char *min_sqnr; /* the same on output SQNR against FP32 (no labels needed) */
	long limit;
	int batch;
};

/* The integer program's answer as quantize overrides "NAME=wXaY" (escaped
 * so each matches its layer only). */
struct cli_mixed_plan {
	char **overrides;
	int n;
	int64_t bytes;
	double avg_wbits, objective;
	int met, missed; /* --max-drop: the target was met / could not be met (the best found is the plan) */
};

/*
 * Read (--sens) or measure (--data) the sensitivities of the layers qo plans,
 * solve the integer program for the budgets in a, print the chosen setting
 * per layer on `info`, and fill *out (cli_mixed_plan_free). 0, or the exit
 * code after one error line (an infeasible budget names the smallest one).
 * With max_drop: search the smallest plan whose top-1 on eval_data is within
 * max_drop points of FP32's (quantizing and evaluating each candidate); the
 * plan is the best found, and out->missed says when none met the target.
 * With min_sqnr the same search keeps plans whose output SQNR against the
 * FP32 model is at least min_sqnr dB (eval_data needs no labels).
 */
int cli_mixed_precision(const char *model, const struct qt_calib_table *calib, const struct qt_quant_opts *qo,
			const struct cli_mixed_args *a, FILE *info, struct cli_mixed_plan *out);
void cli_mixed_plan_free(struct cli_mixed_plan *p);

#endif
