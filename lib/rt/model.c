/* qt_model: one interface over the FP32 (ONNX) and integer (.qmod) executors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qtool/model.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "qmodel_int.h"
#include "kernels/kernels.h"

struct qt_model {
	enum qt_model_kind kind;
	struct qt_graph *g;
	struct qt_rt *rt;        /* FP32 */
	struct qt_qrt *qrt;      /* integer */
	uint64_t file_bytes;
	char sha_hex[65];
	int has_oq; /* first output quantized: its scale and zero point */
	float out_scale;
	int32_t out_zp;
};

void qt_hex32(const uint8_t *bytes, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hx[bytes[i] >> 4];
		out[2 * i + 1] = hx[bytes[i] & 15];
	}
	out[64] = '\0';
}

static int is_qmod(const char *path)
{
	unsigned char magic[8] = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(magic, 1, sizeof magic, f);
	fclose(f);
	return n == sizeof magic && qt_qmod_magic_ok(magic);
}

enum model_mode { OPEN_RUN, OPEN_SIM, OPEN_PREPARED };

static enum qt_status model_open(const char *path, enum model_mode mode, struct qt_model **out)
{
	*out = NULL;
	struct stat s;
	if (stat(path, &s) != 0)
		return qt_error(QT_E_IO, "%s: cannot open: no such file", path);
	struct qt_model *m = calloc(1, sizeof *m);
	if (!m)
		return qt_error(QT_E_NOMEM, "out of memory");
	m->file_bytes = (uint64_t)s.st_size;
	enum qt_status st;
	int sim = mode == OPEN_SIM;
	if (is_qmod(path) && mode != OPEN_PREPARED) {
		m->kind = sim ? QT_MODEL_QMOD_SIM : QT_MODEL_QMOD;
		st = qt_qmod_read(path, &m->g);
		if (!st && m->g->n_outputs > 0 && m->g->values[m->g->outputs[0]].q) {
			m->has_oq = 1;
			m->out_scale = m->g->values[m->g->outputs[0]].q->scale[0];
			m->out_zp = m->g->values[m->g->outputs[0]].q->zero_point[0];
		}
		if (!st && sim) {
			if (!(st = qt_fakequant_prepare(m->g)) && !(st = qt_rt_new(m->g, &m->rt)))
				qt_rt_set_observer(m->rt, qt_fakequant_observer, m->g);
		} else if (!st) {
			st = qt_qrt_new(m->g, &m->qrt);
		}
	} else if (sim) {
		st = qt_error(QT_E_INVALID_ARG, "%s: only a .qmod has a float simulation", path);
	} else {
		m->kind = QT_MODEL_ONNX;
		st = qt_graph_load_onnx(path, &m->g);
		if (!st && mode == OPEN_PREPARED)
			st = qt_quant_prepare(m->g, NULL);
		if (!st)
			st = qt_rt_new(m->g, &m->rt);
		if (!st && mode == OPEN_PREPARED)
			qt_rt_set_observer(m->rt, qt_fused_act_observer, m->g);
	}
	if (!st && (m->g->n_inputs < 1 || m->g->n_outputs < 1))
		st = qt_error(QT_E_UNSUPPORTED, "%s: the model has %d inputs and %d outputs; it needs at least one of each",
			      path, m->g->n_inputs, m->g->n_outputs);
	if (st) {
		qt_model_free(m);
		return st;
	}
	qt_hex32(m->g->sha256, m->sha_hex);
	*out = m;
	return QT_OK;
}

enum qt_status qt_model_open(const char *path, struct qt_model **out)
{
	return model_open(path, OPEN_RUN, out);
}

enum qt_status qt_model_open_sim(const char *path, struct qt_model **out)
{
	return model_open(path, OPEN_SIM, out);
}

enum qt_status qt_model_open_prepared(const char *path, struct qt_model **out)
{
	if (is_qmod(path)) {
		*out = NULL;
		return qt_error(QT_E_INVALID_ARG, "%s: a .qmod, not an FP32 ONNX model", path);
	}
	return model_open(path, OPEN_PREPARED, out);
}

enum qt_status qt_model_keep_values(struct qt_model *m)
{
	if (!m->rt)
		return qt_error(QT_E_UNSUPPORTED, "the integer runtime does not keep intermediate values");
	qt_rt_keep_all(m->rt, 1);
	return QT_OK;
}

const struct qt_tensor *qt_model_value(const struct qt_model *m, int v)
{
	return m->rt ? qt_rt_value(m->rt, v) : NULL;
}

int qt_model_output_qparams(const struct qt_model *m, float *scale_out, int32_t *zp_out)
{
	if (!m->has_oq)
		return 0;
	*scale_out = m->out_scale;
	*zp_out = m->out_zp;
	return 1;
}

void qt_model_free(struct qt_model *m)
{
	if (!m)
		return;
	qt_rt_free(m->rt);
	qt_qrt_free(m->qrt);
	qt_graph_free(m->g);
	free(m);
}

const struct qt_rt_stats *qt_model_stats(const struct qt_model *m)
{
	return m->rt ? qt_rt_stats(m->rt) : NULL;
}

enum qt_model_kind qt_model_kind(const struct qt_model *m)
{
	return m->kind;
}

const struct qt_graph *qt_model_graph(const struct qt_model *m)
{
	return m->g;
}

const char *qt_model_engine(const struct qt_model *m)
{
	const struct qt_kernels *k;
	if (!m->qrt)
		return "fp32 (OpenBLAS)";
	k = qt_kernels_active();
	return k ? k->isa_name : "?";
}

uint64_t qt_model_file_bytes(const struct qt_model *m)
{
	return m->file_bytes;
}

const char *qt_model_sha256_hex(const struct qt_model *m)
{
	return m->sha_hex;
}

enum qt_status qt_model_run_all(struct qt_model *m, const struct qt_tensor *inputs, struct qt_tensor *outputs)
{
	return m->qrt ? qt_qrt_run(m->qrt, inputs, outputs) : qt_rt_run(m->rt, inputs, outputs);
}

enum qt_status qt_model_run(struct qt_model *m, const struct qt_tensor *x, struct qt_tensor *y_out)
{
	int n = m->g->n_outputs;
	if (m->g->n_inputs != 1)
		return qt_error(QT_E_UNSUPPORTED, "the model has %d inputs; this feeds one", m->g->n_inputs);
	struct qt_tensor *outs = calloc((size_t)n + 1, sizeof *outs);
	if (!outs)
		return qt_error(QT_E_NOMEM, "out of memory");
	enum qt_status st = m->qrt ? qt_qrt_run(m->qrt, x, outs) : qt_rt_run(m->rt, x, outs);
	if (!st) {
		*y_out = outs[0];
		for (int i = 1; i < n; i++)
			qt_tensor_free(&outs[i]);
	}
	free(outs);
	return st;
}
