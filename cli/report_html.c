/*
 * analyze --html: one self-contained page (inline SVG and CSS, a few lines of
 * inline script that only count what was drawn; nothing is fetched) with
 * three plots of a sensitivity measurement:
 *   - per layer and quantized setting, the SQNR of the layer's own output
 *     against FP32 when only it takes that setting (bars);
 *   - the sensitivity heat map, layer x setting (log colour scale);
 *   - weight bytes against the predicted loss (the sum of the chosen layers'
 *     costs, the integer program's objective) of the program solved at
 *     average weight bits 8 down to 2, with the uniform W8/W4/W3/W2 plans.
 * The element classes (rect.bar, rect.cell, circle.ilp, circle.uniform) are
 * what tests/cli/test_report.sh counts in the rendered page.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"

#define NAME_W 300 /* the layer-name column */
#define BAR_H 7
#define ROW_GAP 6
#define BARS_W 520
#define CELL_W 64
#define CELL_H 18
#define PLOT_W 640
#define PLOT_H 360
#define PAD 56

static const char *const palette[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"};
#define PALETTE_N (int)(sizeof palette / sizeof palette[0])

/* s with &, <, >, " as entities; with max > 0 at most max characters (a
 * long name is cut at the front, where layer paths repeat). */
static void put_esc(FILE *f, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (max && n > max) {
		fputs("&#8230;", f);
		s += n - (max - 1);
	}
	for (; *s; s++)
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
}

static double cost_at(const struct qt_sens *s, int l, int k)
{
	return s->cost[(size_t)l * s->n_settings + k];
}

/* Per layer, one bar per quantized setting: the layer's output SQNR. */
static void sqnr_bars(FILE *f, const struct qt_sens *s)
{
	int q = 0;
	double top = 10;
	for (int k = 0; k < s->n_settings; k++)
		q += s->settings[k].wbits != 32;
	for (size_t i = 0; i < (size_t)s->n_layers * s->n_settings; i++)
		if (isfinite(s->sqnr[i]) && s->sqnr[i] > top)
			top = s->sqnr[i];
	top = 10 * ceil(top / 10);
	int row = q * BAR_H + ROW_GAP, h = s->n_layers * row + 40;
	fprintf(f, "<svg id=\"sqnr\" width=\"%d\" height=\"%d\" role=\"img\">\n", NAME_W + BARS_W + 50, h);
	for (int t = 0; t <= (int)top; t += 10) {
		double x = NAME_W + BARS_W * t / top;
		fprintf(f, "<line x1=\"%.1f\" y1=\"20\" x2=\"%.1f\" y2=\"%d\" class=\"grid\"/><text x=\"%.1f\" y=\"14\" class=\"tick\">%d dB</text>\n",
			x, x, h - 10, x, t);
	}
	for (int l = 0; l < s->n_layers; l++) {
		int y0 = 24 + l * row;
		fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"name\">", NAME_W - 6, y0 + q * BAR_H / 2 + 4);
		put_esc(f, s->names[l], 40);
		fputs("</text>\n", f);
		for (int k = 0, j = 0; k < s->n_settings; k++) {
			if (s->settings[k].wbits == 32)
				continue;
			char b[QT_SETTING_STR_MAX];
			double v = s->sqnr[(size_t)l * s->n_settings + k];
			double w = isfinite(v) ? fmax(1, BARS_W * fmin(v, top) / top) : 1;
			fprintf(f, "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>", NAME_W,
				y0 + j * BAR_H, w, BAR_H - 1, palette[k % PALETTE_N]);
			put_esc(f, s->names[l], 0);
			fprintf(f, " %s: %.2f dB</title></rect>\n", qt_bits_setting_str(&s->settings[k], b), v);
			j++;
		}
	}
	fputs("</svg>\n", f);
}

/* Layer x setting, colour by log10 of the cost between the smallest and
 * largest positive costs; 0 (float) is the lightest. */
static void heat_map(FILE *f, const struct qt_sens *s)
{
	double lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < (size_t)s->n_layers * s->n_settings; i++)
		if (s->cost[i] > 0) {
			lo = fmin(lo, log10(s->cost[i]));
			hi = fmax(hi, log10(s->cost[i]));
		}
	int w = NAME_W + s->n_settings * CELL_W + 20, h = 28 + s->n_layers * CELL_H + 10;
	fprintf(f, "<svg id=\"heat\" width=\"%d\" height=\"%d\" role=\"img\">\n", w, h);
	for (int k = 0; k < s->n_settings; k++) {
		char b[QT_SETTING_STR_MAX];
		fprintf(f, "<text x=\"%d\" y=\"18\" class=\"col\">%s</text>\n", NAME_W + k * CELL_W + CELL_W / 2,
			qt_bits_setting_str(&s->settings[k], b));
	}
	for (int l = 0; l < s->n_layers; l++) {
		int y = 26 + l * CELL_H;
		fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"name\">", NAME_W - 6, y + CELL_H - 5);
		put_esc(f, s->names[l], 40);
		fputs("</text>\n", f);
		for (int k = 0; k < s->n_settings; k++) {
			double c = cost_at(s, l, k), t = c > 0 && hi > lo ? (log10(c) - lo) / (hi - lo) : c > 0 ? 1 : 0;
			char b[QT_SETTING_STR_MAX];
			/* light yellow (low) to dark red (high) */
			fprintf(f,
				"<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"hsl(%.0f,90%%,%.0f%%)\">"
				"<title>",
				NAME_W + k * CELL_W, y, CELL_W - 2, CELL_H - 2, 55 * (1 - t), 92 - 55 * t);
			put_esc(f, s->names[l], 0);
			fprintf(f, " %s: cost %.4g</title></rect><text x=\"%d\" y=\"%d\" class=\"val%s\">%.2g</text>\n",
				qt_bits_setting_str(&s->settings[k], b), c, NAME_W + k * CELL_W + CELL_W / 2 - 1, y + CELL_H - 6,
				t > 0.6 ? " dark" : "", c);
		}
	}
	fputs("</svg>\n", f);
}

struct point {
	double bytes, loss;
	char label[QT_SETTING_STR_MAX];
};

/* The program at average weight bits 8, 7, ..., 2 over every setting of s,
 * and the uniform plans; counts in *n_ilp and *n_uni. */
static int pareto_points(const struct qt_sens *s, struct point *ilp, int *n_ilp, struct point *uni, int *n_uni)
{
	static const double budgets[] = {8, 7, 6, 5, 4, 3.5, 3, 2.5, 2};
	int L = s->n_layers, S = s->n_settings, wbits[16];
	int *choice = malloc(((size_t)L + 1) * sizeof *choice);
	if (!choice)
		return -1;
	for (int k = 0; k < S; k++)
		wbits[k] = s->settings[k].wbits;
	struct qt_bitalloc p = {.n_layers = L, .n_settings = S, .cost = s->cost, .bytes = s->bytes, .params = s->params,
				.wbits = wbits};
	*n_ilp = 0;
	for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
		struct qt_bitalloc_result r;
		p.max_avg_wbits = budgets[i];
		if (qt_bitalloc_solve(&p, choice, &r) != QT_OK)
			continue; /* below the smallest setting */
		struct point *pt = &ilp[*n_ilp];
		pt->bytes = (double)r.bytes;
		pt->loss = r.objective;
		snprintf(pt->label, sizeof pt->label, "%g bits", budgets[i]);
		(*n_ilp)++;
	}
	free(choice);
	*n_uni = 0;
	static const int uw[] = {8, 4, 3, 2};
	for (int i = 0; i < 4; i++) {
		int k = -1;
		for (int j = 0; j < S; j++)
			if (s->settings[j].wbits == uw[i] && (k < 0 || s->settings[j].abits == 8))
				k = j;
		if (k < 0)
			continue;
		struct point *pt = &uni[(*n_uni)++];
		pt->bytes = pt->loss = 0;
		for (int l = 0; l < L; l++) {
			pt->bytes += (double)s->bytes[(size_t)l * S + k];
			pt->loss += cost_at(s, l, k);
		}
		char b[QT_SETTING_STR_MAX];
		qt_bits_setting_str(&s->settings[k], b);
		for (char *c = b; *c; c++)
			*c = (char)(*c == 'w' ? 'W' : *c == 'a' ? 'A' : *c);
		snprintf(pt->label, sizeof pt->label, "%s", b);
	}
	return 0;
}

static void pareto_plot(FILE *f, const struct qt_sens *s, const struct point *ilp, int ni, const struct point *uni, int nu)
{
	double xmax = 0, ylo = INFINITY, yhi = -INFINITY, floor_ = INFINITY;
	for (int i = 0; i < ni + nu; i++) {
		const struct point *p = i < ni ? &ilp[i] : &uni[i - ni];
		xmax = fmax(xmax, p->bytes);
		if (p->loss > 0)
			floor_ = fmin(floor_, p->loss);
	}
	floor_ = isfinite(floor_) ? floor_ / 2 : 1e-12;
	for (int i = 0; i < ni + nu; i++) {
		const struct point *p = i < ni ? &ilp[i] : &uni[i - ni];
		ylo = fmin(ylo, log10(fmax(p->loss, floor_)));
		yhi = fmax(yhi, log10(fmax(p->loss, floor_)));
	}
	ylo = floor(ylo);
	yhi = fmax(ceil(yhi), ylo + 1);
	xmax = xmax > 0 ? xmax * 1.08 : 1;
#define PX(b) (PAD + (PLOT_W - 2 * PAD) * (b) / xmax)
#define PYL(lg) (PLOT_H - PAD + (2 * PAD - PLOT_H) * ((lg) - ylo) / (yhi - ylo))
#define PY(v) PYL(log10(fmax((v), floor_)))
	fprintf(f, "<svg id=\"pareto\" width=\"%d\" height=\"%d\" role=\"img\">\n", PLOT_W, PLOT_H);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>", PAD, PLOT_H - PAD, PLOT_W - PAD, PLOT_H - PAD);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>\n", PAD, PAD, PAD, PLOT_H - PAD);
	for (int i = 0; i <= 4; i++) {
		double b = xmax * i / 4;
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"tick mid\">%.0f KB</text>\n", PX(b), PLOT_H - PAD + 16, b / 1000);
	}
	for (double e = ylo; e <= yhi; e++)
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"tick end\">1e%.0f</text>\n", PAD - 4,
			PYL(e) + 4, e);
	fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"label mid\">weight bytes with scales</text>\n", PLOT_W / 2, PLOT_H - 12);
	fprintf(f, "<text x=\"14\" y=\"%d\" class=\"label mid\" transform=\"rotate(-90 14 %d)\">predicted loss (%s, sum of costs)</text>\n",
		PLOT_H / 2, PLOT_H / 2, s->loss);
	fputs("<polyline class=\"front\" points=\"", f);
	for (int i = 0; i < ni; i++)
		fprintf(f, "%.1f,%.1f ", PX(ilp[i].bytes), PY(ilp[i].loss));
	fputs("\"/>\n", f);
	for (int i = 0; i < ni; i++)
		fprintf(f, "<circle class=\"ilp\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\"><title>ILP at %s: %.0f bytes, loss %.4g</title></circle>\n",
			PX(ilp[i].bytes), PY(ilp[i].loss), ilp[i].label, ilp[i].bytes, ilp[i].loss);
	for (int i = 0; i < nu; i++)
		fprintf(f, "<circle class=\"uniform\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\"><title>uniform %s: %.0f bytes, loss %.4g</title></circle>"
			   "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\">%s</text>\n",
			PX(uni[i].bytes), PY(uni[i].loss), uni[i].label, uni[i].bytes, uni[i].loss, PX(uni[i].bytes) + 7,
			PY(uni[i].loss) - 6, uni[i].label);
	fputs("</svg>\n", f);
#undef PX
#undef PY
#undef PYL
}

/* Per layer and setting: bytes, SQNR, cost, share of that setting's total,
 * and the integer runtime's time (this machine's, when analyze ran). */
static void table(FILE *f, const struct qt_sens *s)
{
	fputs("<table><tr><th>layer</th><th>op</th><th>params</th><th>setting</th><th>bytes</th><th>SQNR dB</th>"
	      "<th>sensitivity</th><th>share</th><th>integer runtime &#181;s/sample</th></tr>\n", f);
	for (int l = 0; l < s->n_layers; l++)
		for (int k = 0; k < s->n_settings; k++) {
			char b[QT_SETTING_STR_MAX];
			double tot = qt_sens_setting_total(s, k), q = s->sqnr[(size_t)l * s->n_settings + k];
			fputs("<tr><td>", f);
			if (k == 0) {
				put_esc(f, s->names[l], 0);
				fprintf(f, "</td><td>%s</td><td>%lld", s->ops[l], (long long)s->params[l]);
			} else {
				fputs("</td><td></td><td>", f);
			}
			fprintf(f, "</td><td>%s</td><td>%lld</td>", qt_bits_setting_str(&s->settings[k], b),
				(long long)s->bytes[(size_t)l * s->n_settings + k]);
			if (isfinite(q))
				fprintf(f, "<td>%.2f</td>", q);
			else
				fputs("<td>-</td>", f);
			int64_t ns = s->ns[(size_t)l * s->n_settings + k];
			fprintf(f, "<td>%.4g</td><td>%.1f%%</td>", cost_at(s, l, k), tot > 0 ? 100 * cost_at(s, l, k) / tot : 0);
			if (ns >= 0)
				fprintf(f, "<td>%.2f</td></tr>\n", (double)ns / 1000);
			else
				fputs("<td>-</td></tr>\n", f);
		}
	fputs("</table>\n", f);
}

static const char style[] =
	"body{font:14px/1.4 sans-serif;margin:24px;color:#222;max-width:1100px}"
	"h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
	"svg text{font:11px monospace;fill:#222}"
	".name{text-anchor:end}.col,.mid{text-anchor:middle}.end{text-anchor:end}"
	".val{text-anchor:middle;font-size:9px}.val.dark{fill:#fff}"
	".grid{stroke:#ddd}.axis{stroke:#444}"
	".front{fill:none;stroke:#1f78b4;stroke-width:1.5}.ilp{fill:#1f78b4}.uniform{fill:#e31a1c}"
	".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}"
	"table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}"
	"td:first-child,th:first-child{text-align:left;font-family:monospace}";

/* Counts what the browser drew (a non-empty box) into data- attributes of
 * <body>, so a headless browser's DOM dump shows the plots were rendered. */
static const char counter[] =
	"<script>(function(){function n(q){var c=0;document.querySelectorAll(q).forEach(function(e){"
	"var b=e.getBBox();if(b.width>0&&b.height>0)c++});return String(c)}var d=document.body.dataset;"
	"d.drawnBars=n('#sqnr rect.bar');d.drawnCells=n('#heat rect.cell');d.drawnIlp=n('#pareto circle.ilp');"
	"d.drawnUniform=n('#pareto circle.uniform')})()</script>\n";

enum qt_status cli_report_html(const struct qt_sens *s, const char *model, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	struct point ilp[16], uni[4];
	int ni = 0, nu = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f || pareto_points(s, ilp, &ni, uni, &nu)) {
		if (f)
			fclose(f);
		free(buf);
		return qt_error(QT_E_NOMEM, "out of memory writing %s", path);
	}
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>qtool per-layer report: ", f);
	put_esc(f, model, 0);
	fprintf(f, "</title><style>%s</style></head>\n<body>\n<h1>Per-layer report: ", style);
	put_esc(f, model, 0);
	fputs("</h1>\n<p>sha256 ", f);
	put_esc(f, s->model_sha256, 0);
	fprintf(f, "; %lld samples of ", (long long)s->samples);
	put_esc(f, s->data, 0);
	fprintf(f, "; loss %s; %s weights%s; methods %s. Made by <code>", s->loss,
		s->gran == QT_GRAN_TENSOR ? "per-tensor" : s->gran == QT_GRAN_GROUP ? "grouped" : "per-channel",
		s->wfull ? " (full range)" : "", qt_methods_str(s->methods));
	put_esc(f, cli_command_line(), 0);
	fputs("</code>.</p>\n", f);

	fputs("<h2>Per-layer output SQNR</h2>\n<p>SQNR of each layer's own output against FP32 when only that layer "
	      "takes the setting (its weights quantized, its input rounded to its grid), in the float simulation.</p>\n"
	      "<p class=\"legend\">", f);
	for (int k = 0; k < s->n_settings; k++) {
		char b[QT_SETTING_STR_MAX];
		if (s->settings[k].wbits != 32)
			fprintf(f, "<span style=\"background:%s\"></span>%s", palette[k % PALETTE_N],
				qt_bits_setting_str(&s->settings[k], b));
	}
	fputs("</p>\n", f);
	sqnr_bars(f, s);
	fputs("<h2>Sensitivity (layer x setting)</h2>\n<p>Increase of the model's output loss when only that layer takes "
	      "the setting (docs/SENSITIVITY.md); colour on a log scale, darker is worse.</p>\n", f);
	heat_map(f, s);
	fputs("<h2>Size and predicted loss</h2>\n<p>Blue: the integer program at average weight bits 8, 7, 6, 5, 4, 3.5, "
	      "3, 2.5, 2 (where feasible); red: every layer at one setting. y is the predicted loss, the sum of the "
	      "chosen layers' costs (the program's objective, which assumes layers' errors add up), not a measured "
	      "accuracy.</p>\n", f);
	pareto_plot(f, s, ilp, ni, uni, nu);
	fputs("<h2>Table</h2>\n<p>Share: the layer's part of the summed cost of the model with every layer at that "
	      "setting.</p>\n", f);
	table(f, s);
	fputs(counter, f);
	fputs("</body></html>\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return qt_error(QT_E_NOMEM, "out of memory writing %s", path);
	}
	enum qt_status st = cli_out_write_all(path, buf, len);
	free(buf);
	return st;
}
