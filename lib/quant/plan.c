/*
 * The quantization plan (include/qtool/quant.h): one record per weighted
 * node the quantizer can give integer weights, filled from the defaults, then
 * edited by per-layer overrides in the order given.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/quant.h"
#include "quant/quant_int.h"

void qt_plan_free(struct qt_plan *p)
{
	if (!p)
		return;
	free(p->layers);
	memset(p, 0, sizeof *p);
}

/* A pattern names a layer by its node name or its output's name (exporters
 * often leave nodes unnamed), as an fnmatch glob. */
static int layer_matches(const struct qt_graph *g, const struct qt_layer_plan *l, const char *pat)
{
	const struct qt_node *n = &g->nodes[l->node];
	if (n->name[0] && !fnmatch(pat, n->name, 0))
		return 1;
	return n->n_outputs > 0 && n->outputs[0] >= 0 && !fnmatch(pat, g->values[n->outputs[0]].name, 0);
}

enum qt_status qt_plan_override(const struct qt_graph *g, struct qt_plan *p, const char *spec)
{
	const char *eq = spec ? strrchr(spec, '=') : NULL;
	if (!eq || eq == spec || !eq[1])
		return qt_error(QT_E_INVALID_ARG, "layer override '%s' must be PATTERN=wXaY or PATTERN=float",
				spec ? spec : "");
	char pat[512];
	size_t len = (size_t)(eq - spec);
	if (len >= sizeof pat)
		return qt_error(QT_E_INVALID_ARG, "layer pattern is longer than %zu characters", sizeof pat - 1);
	memcpy(pat, spec, len);
	pat[len] = 0;
	int wbits = 0, abits = 0, keep = !strcmp(eq + 1, "float");
	enum qt_numfmt wfmt = QT_FMT_INT;
	/* FORMAT keeps the layer's activation bits; FORMAT:a8 / FORMAT:a4 sets them. */
	char fname[32];
	const char *colon = strchr(eq + 1, ':');
	snprintf(fname, sizeof fname, "%.*s", colon ? (int)(colon - eq - 1) : 31, eq + 1);
	if (colon)
		abits = !strcmp(colon, ":a8") ? 8 : !strcmp(colon, ":a4") ? 4 : -1;
	int is_fmt = !keep && abits >= 0 && !qt_numfmt_parse(fname, &wfmt, &wbits);
	if (!keep && !is_fmt && (colon || qt_parse_bits(eq + 1, &wbits, &abits)))
		return qt_error(QT_E_INVALID_ARG,
				"layer override '%s': '%s' is not wXaY (e.g. w8a8, w4a8), a weight format (%s; FORMAT:a4 "
				"sets 4-bit activations) or float",
				spec, eq + 1, qt_numfmt_names());
	int hits = 0;
	for (int i = 0; i < p->n; i++) {
		struct qt_layer_plan *l = &p->layers[i];
		if (!layer_matches(g, l, pat))
			continue;
		hits++;
		l->keep_float = keep;
		if (is_fmt)
			l->wbits = wbits, l->wfmt = wfmt, l->abits = abits ? abits : l->abits;
		else if (!keep)
			l->wbits = wbits, l->abits = abits, l->wfmt = QT_FMT_INT;
	}
	if (!hits)
		return qt_error(QT_E_INVALID_ARG, "layer pattern '%s' matches no quantizable layer (see 'qtool inspect')",
				pat);
	return QT_OK;
}

enum qt_status qt_plan_build(const struct qt_graph *g, const struct qt_quant_opts *o, struct qt_plan *out)
{
	memset(out, 0, sizeof *out);
	out->layers = calloc((size_t)g->n_nodes + 1, sizeof *out->layers);
	if (!out->layers)
		return qt_error(QT_E_NOMEM, "out of memory");
	out->default_abits = o->abits;
	for (int i = 0; i < g->n_nodes; i++) {
		if (!qt_quant_weight_ok(g, &g->nodes[i]))
			continue;
		struct qt_layer_plan *l = &out->layers[out->n++];
		l->node = i;
		l->wbits = o->wbits;
		l->abits = o->abits;
		l->gran = o->gran;
		l->group_size = o->group_size;
		l->wfull = o->wfull;
		l->methods = o->methods;
		l->wfmt = o->wfmt;
		l->afmt = o->afmt;
		l->mx_rule = o->mx_rule;
	}
	enum qt_status st = QT_OK;
	for (int i = 0; i < o->n_overrides && !st; i++)
		st = qt_plan_override(g, out, o->overrides[i]);
	for (int i = 0; i < o->n_keep_float && !st; i++) {
		char spec[600];
		snprintf(spec, sizeof spec, "%s=float", o->keep_float[i]);
		st = qt_plan_override(g, out, spec);
	}
	if (st)
		qt_plan_free(out);
	return st;
}

int qt_plan_decoded(const struct qt_layer_plan *p)
{
	return p->wfmt != QT_FMT_INT || p->afmt != QT_FMT_INT;
}

static const struct {
	const char *name;
	unsigned flag;
} method_names[] = {
	/* In the order the stages apply them: qt_methods_str lists them so. */
	{"rtn", 0},
	{"cle", QT_METHOD_CLE},
	{"smoothquant", QT_METHOD_SMOOTHQUANT},
	{"act-range", QT_METHOD_ACTRANGE},
	{"gptq", QT_METHOD_GPTQ},
	{"adaround", QT_METHOD_ADAROUND},
	{"bias-correction", QT_METHOD_BIASCORR},
	{"mse", QT_METHOD_MSE},
};

int qt_parse_methods(const char *s, unsigned *methods_out, const char **bad_out)
{
	struct qt_quant_opts o = {0};
	int r = qt_parse_method_list(s, &o, bad_out);
	if (!r)
		*methods_out = o.methods;
	return r;
}

/* The argument of "smoothquant=A": a number in [0, 1] or "auto" (-1). */
static int parse_alpha(const char *a, size_t len, double *out)
{
	char buf[32];
	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, a, len);
	buf[len] = 0;
	if (!strcmp(buf, "auto")) {
		*out = -1;
		return 0;
	}
	char *end;
	double v = strtod(buf, &end);
	if (*end || !(v >= 0 && v <= 1))
		return -1;
	*out = v;
	return 0;
}

int qt_parse_method_list(const char *s, struct qt_quant_opts *o, const char **bad_out)
{
	static char bad[128];
	unsigned m = 0;
	o->sq_alpha = 0.5;
	const char *p = s ? s : "";
	if (!*p) {
		*bad_out = "";
		return -1;
	}
	while (*p) {
		size_t len = strcspn(p, ",");
		size_t name_len = strcspn(p, ",=");
		size_t i, n = sizeof method_names / sizeof method_names[0];
		for (i = 0; i < n; i++)
			if (strlen(method_names[i].name) == name_len && !strncmp(p, method_names[i].name, name_len))
				break;
		/* Only smoothquant takes an argument. */
		if (i < n && name_len < len &&
		    (method_names[i].flag != QT_METHOD_SMOOTHQUANT ||
		     parse_alpha(p + name_len + 1, len - name_len - 1, &o->sq_alpha)))
			i = n;
		if (i == n) {
			snprintf(bad, sizeof bad, "%.*s", (int)(len < 100 ? len : 100), p);
			*bad_out = bad;
			return -1;
		}
		m |= method_names[i].flag;
		p += len;
		if (*p == ',')
			p++;
	}
	o->methods = m;
	return 0;
}

const char *qt_methods_str(unsigned methods)
{
	static char buf[128];
	buf[0] = 0;
	for (size_t i = 1; i < sizeof method_names / sizeof method_names[0]; i++)
		if (methods & method_names[i].flag) {
			if (buf[0])
				strcat(buf, ",");
			strcat(buf, method_names[i].name);
		}
	return buf[0] ? buf : "rtn";
}
