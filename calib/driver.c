/*
 * The calibration driver as a library call: stream a dataset through a graph
 * with the calibration observer attached and build the table. Used when a
 * graph rewrite (cross-layer equalization, SmoothQuant) makes a calibration
 * file's ranges stale: the rewritten graph is calibrated again on the
 * quantizer's --data. (cmd_calibrate keeps its own loop for its random
 * sample selection and progress bar.)
 */
#include <stdlib.h>
#include <string.h>

#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/rt.h"

struct chain {
	qt_rt_observer pre;
	void *pre_user;
	struct qt_calib *c;
};

/* The caller's observer first (e.g. the fused activations), then the record. */
static enum qt_status chain_observer(void *user, int value, struct qt_tensor *t)
{
	struct chain *ch = user;
	enum qt_status st = ch->pre ? ch->pre(ch->pre_user, value, t) : QT_OK;
	return st ? st : qt_calib_observer(ch->c, value, t);
}

enum qt_status qt_dataset_run(const struct qt_graph *g, struct qt_dataset *ds, int batch, qt_rt_observer fn,
			      void *user, int64_t *done_out)
{
	if (batch < 1 || g->n_inputs != 1)
		return qt_error(QT_E_INVALID_ARG, "data run: needs batch >= 1 and one graph input (%d)", g->n_inputs);
	struct qt_rt *rt = NULL;
	struct qt_tensor x = {0};
	struct qt_tensor *outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
	if (!outs)
		return qt_error(QT_E_NOMEM, "out of memory");
	enum qt_status st = qt_rt_new(g, &rt);
	int64_t done = 0;
	if (!st) {
		qt_rt_set_observer(rt, fn, user);
		qt_dataset_reset(ds);
	}
	while (!st) {
		int n;
		if ((st = qt_dataset_next(ds, batch, &x, NULL, &n)) != QT_OK || n == 0)
			break;
		st = qt_rt_run(rt, &x, outs);
		for (int k = 0; k < g->n_outputs; k++)
			qt_tensor_free(&outs[k]);
		if (st)
			qt_error_prefix(st, "samples %lld..%lld", (long long)done, (long long)(done + n - 1));
		done += n;
	}
	qt_tensor_free(&x);
	free(outs);
	qt_rt_free(rt);
	if (done_out)
		*done_out = done;
	return st;
}

enum qt_status qt_calib_run(const struct qt_graph *g, struct qt_dataset *ds, int batch, qt_rt_observer pre,
			    void *pre_user, const struct qt_calib_opts *copt, const struct qt_calib_meta *meta,
			    struct qt_calib_table **out)
{
	*out = NULL;
	struct chain ch = {.pre = pre, .pre_user = pre_user};
	int64_t done = 0;
	enum qt_status st = qt_calib_new(g, copt, &ch.c);
	if (!st)
		st = qt_dataset_run(g, ds, batch, chain_observer, &ch, &done);
	if (!st) {
		struct qt_calib_meta m = *meta;
		m.samples = done;
		st = qt_calib_finish(ch.c, &m, out);
	}
	qt_calib_free(ch.c);
	return st;
}
