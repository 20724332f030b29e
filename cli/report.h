/*
 * The per-layer report (cli/report.c, docs/SENSITIVITY.md "The per-layer
 * report"): what each quantized layer of a .qmod is, how far its output is
 * from FP32's in the float simulation (eval --per-layer), and the HTML page
 * of a sensitivity measurement (analyze --html).
 */
#ifndef QT_CLI_REPORT_H
#define QT_CLI_REPORT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "qtool/bitalloc.h"
#include "qtool/model.h"

/* A quantized layer of a .qmod graph, as stored (before any simulation). */
struct cli_qlayer {
	const char *name;     /* node name, or its output's name when it has none (as --layer matches) */
	const char *op;
	const char *format;   /* "int" or the weight number format (qt_numfmt_name) */
	const char *granularity;
	int wbits, abits;     /* code bits of the weight; of the input read (32: float) */
	int64_t params;       /* weights */
	int64_t bytes;        /* codes plus scales and zero points as stored */
	int decoded;          /* stored quantized, run in FP32 on decoded weights */
};
/* Fill *out when node i of g (a .qmod's graph; borrowed, out points into it)
 * has quantized weights; returns 1 then, else 0. */
int cli_qmod_layer(const struct qt_graph *g, int i, struct cli_qlayer *out);
/* "w4a8", or "mxfp4/a8" for a number format; buf of at least 48 bytes. */
const char *cli_qlayer_setting(const struct cli_qlayer *l, char *buf, size_t cap);

/* eval --per-layer: per quantized layer of a .qmod, its output in the float
 * simulation against the FP32 model's (prepared as quantize prepares it). */
struct cli_layer_row {
	struct cli_qlayer q;
	char setting[48];
	int v_sim, v_fp32;       /* the layer's output value in each graph */
	struct qt_sqnr_acc err;  /* over every element of every sample */
	double sens;             /* the layer's cost at its setting (--sens), NaN without */
};
struct cli_per_layer {
	struct qt_graph *stored; /* the .qmod as stored: names, bits, bytes */
	struct qt_model *sim, *fp32;
	struct cli_layer_row *rows;
	int n;
	char loss[16];           /* of --sens, "" without */
	double sens_total;       /* sum of the rows' sens (those that have one) */
};
/*
 * Open the per-layer comparison of the .qmod at qmod_path with the FP32 ONNX
 * model it was quantized from (checked by its sha256); sens_path (may be
 * NULL): a sensitivity file of that model whose cost at each layer's setting
 * is reported. 0, or the exit code after one error line naming the file.
 */
int cli_per_layer_open(const char *cmd, const char *qmod_path, const char *fp32_path, const char *sens_path,
		       struct cli_per_layer *pl);
/* Run both models on batch x (borrowed) and add every layer's error; 0 or the exit code. */
int cli_per_layer_add(const char *cmd, struct cli_per_layer *pl, const struct qt_tensor *x);
void cli_per_layer_print(const struct cli_per_layer *pl, FILE *f);
/* The rows as a JSON array (docs/REPORT.md "per_layer"); NULL when out of memory. */
cJSON *cli_per_layer_json(const struct cli_per_layer *pl);
void cli_per_layer_free(struct cli_per_layer *pl);

/*
 * analyze --html: the self-contained page of sensitivities s (borrowed)
 * measured on `model`: per-layer SQNR bars, the sensitivity heat map, and
 * the size / predicted-loss curve of the integer program against the
 * uniform settings. Written to path as one output (cli_out_write_all).
 */
enum qt_status cli_report_html(const struct qt_sens *s, const char *model, const char *path);

#endif
