/*
 * Mixed precision as an integer program (include/qtool/bitalloc.h): one
 * binary per (layer, setting), exactly one setting per layer, the sum of the
 * chosen sensitivities minimised under the user's budgets. GLPK solves it to
 * optimality; the answer is then checked in exact integer arithmetic, so a
 * solver tolerance can never let a plan go over budget.
 *
 * Float: costs are doubles and only steer the choice; every budget
 * (bytes, weight bits, bit operations, nanoseconds) is an integer sum
 * checked exactly.
 */
#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/bitalloc.h"

/* Constraint rows after the one-per-layer rows. */
enum { ROW_BYTES, ROW_WBITS, ROW_BOPS, ROW_NS, N_BUDGETS };

/* Integer bound on sum params * wbits for an average of b bits per weight. */
static int64_t wbits_budget(double b, int64_t params)
{
	return (int64_t)floor(b * (double)params + 1e-6);
}

static int64_t sum_params(const struct qt_bitalloc *p)
{
	int64_t s = 0;
	for (int l = 0; l < p->n_layers; l++)
		s += p->params[l];
	return s;
}

int qt_bitalloc_eval(const struct qt_bitalloc *p, const int *choice, struct qt_bitalloc_result *res_out)
{
	struct qt_bitalloc_result r = {0};
	int64_t P = sum_params(p);
	int allowed = 1;
	for (int l = 0; l < p->n_layers; l++) {
		size_t i = (size_t)l * p->n_settings + choice[l];
		allowed &= !p->allowed || p->allowed[i];
		r.objective += p->cost[i];
		r.bytes += p->bytes[i];
		r.wbits_sum += p->params[l] * p->wbits[choice[l]];
		if (p->bops)
			r.bops += p->bops[i];
		if (p->ns)
			r.ns += p->ns[i];
	}
	r.avg_wbits = P > 0 ? (double)r.wbits_sum / (double)P : 0;
	if (res_out)
		*res_out = r;
	return allowed && (p->max_bytes <= 0 || r.bytes <= p->max_bytes) &&
	       (p->max_avg_wbits <= 0 || r.wbits_sum <= wbits_budget(p->max_avg_wbits, P)) &&
	       (p->max_bops <= 0 || r.bops <= p->max_bops) && (p->max_ns <= 0 || r.ns <= p->max_ns);
}

static enum qt_status check_problem(const struct qt_bitalloc *p)
{
	if (p->n_layers < 1 || p->n_settings < 1 || p->n_layers > (1 << 20) / p->n_settings)
		return qt_error(QT_E_INVALID_ARG, "bit allocation: %d layers x %d settings is empty or too large",
				p->n_layers, p->n_settings);
	if (!p->cost || !p->bytes || !p->params || !p->wbits)
		return qt_error(QT_E_INVALID_ARG, "bit allocation: costs, bytes, params and wbits are required");
	if (p->max_bytes < 0 || p->max_bops < 0 || p->max_ns < 0 || !(p->max_avg_wbits >= 0) ||
	    (p->max_bops > 0 && !p->bops) || (p->max_ns > 0 && !p->ns))
		return qt_error(QT_E_INVALID_ARG,
				"bit allocation: budgets must be >= 0 (bit operations need bops, latency ns)");
	for (int s = 0; s < p->n_settings; s++)
		if (p->wbits[s] < 1 || p->wbits[s] > 32)
			return qt_error(QT_E_INVALID_ARG, "bit allocation: setting %d has %d weight bits", s, p->wbits[s]);
	for (int l = 0; l < p->n_layers; l++) {
		int any = 0;
		for (int s = 0; s < p->n_settings; s++)
			any |= !p->allowed || p->allowed[(size_t)l * p->n_settings + s];
		if (!any)
			return qt_error(QT_E_INVALID_ARG, "bit allocation: layer %d allows no setting", l);
		if (p->params[l] < 0 || p->params[l] > ((int64_t)1 << 40))
			return qt_error(QT_E_INVALID_ARG, "bit allocation: layer %d has %lld weights", l,
					(long long)p->params[l]);
		for (int s = 0; s < p->n_settings; s++) {
			size_t i = (size_t)l * p->n_settings + s;
			if (!isfinite(p->cost[i]))
				return qt_error(QT_E_INVALID_ARG, "bit allocation: cost of layer %d setting %d is not finite",
						l, s);
			if (p->bytes[i] < 0 || p->bytes[i] > ((int64_t)1 << 44) || (p->bops && p->bops[i] < 0) ||
			    (p->ns && (p->ns[i] < 0 || p->ns[i] > ((int64_t)1 << 50))))
				return qt_error(QT_E_INVALID_ARG,
						"bit allocation: bytes, bops or ns of layer %d setting %d out of range", l, s);
		}
	}
	return QT_OK;
}

/* Smallest reachable value of each budgeted sum, every layer at its own
 * smallest setting for that sum. */
static void smallest_sums(const struct qt_bitalloc *p, int64_t min_out[N_BUDGETS])
{
	memset(min_out, 0, N_BUDGETS * sizeof *min_out);
	for (int l = 0; l < p->n_layers; l++) {
		int64_t mb = INT64_MAX, mw = INT64_MAX, mo = INT64_MAX, mn = INT64_MAX;
		for (int s = 0; s < p->n_settings; s++) {
			size_t i = (size_t)l * p->n_settings + s;
			if (p->allowed && !p->allowed[i])
				continue;
			mb = p->bytes[i] < mb ? p->bytes[i] : mb;
			mw = p->params[l] * p->wbits[s] < mw ? p->params[l] * p->wbits[s] : mw;
			if (p->bops)
				mo = p->bops[i] < mo ? p->bops[i] : mo;
			if (p->ns)
				mn = p->ns[i] < mn ? p->ns[i] : mn;
		}
		min_out[ROW_BYTES] += mb;
		min_out[ROW_WBITS] += mw;
		min_out[ROW_BOPS] += p->bops ? mo : 0;
		min_out[ROW_NS] += p->ns ? mn : 0;
	}
}

/* The infeasibility message: the first budget below its smallest reachable
 * value, or that the budgets only conflict together. */
static enum qt_status infeasible(const struct qt_bitalloc *p)
{
	int64_t m[N_BUDGETS], P = sum_params(p);
	smallest_sums(p, m);
	if (p->max_bytes > 0 && m[ROW_BYTES] > p->max_bytes)
		return qt_error(QT_E_NUMERIC,
				"weight size budget %lld bytes is infeasible: the smallest plan of these candidates "
				"(every layer at its smallest) takes %lld bytes",
				(long long)p->max_bytes, (long long)m[ROW_BYTES]);
	if (p->max_avg_wbits > 0 && m[ROW_WBITS] > wbits_budget(p->max_avg_wbits, P))
		return qt_error(QT_E_NUMERIC,
				"average weight bits %g is infeasible: the smallest plan of these candidates "
				"(every layer at its fewest bits) averages %.4f bits",
				p->max_avg_wbits, P > 0 ? (double)m[ROW_WBITS] / (double)P : 0.0);
	if (p->max_bops > 0 && m[ROW_BOPS] > p->max_bops)
		return qt_error(QT_E_NUMERIC,
				"bit-operations budget %lld is infeasible: the smallest plan of these candidates "
				"takes %lld",
				(long long)p->max_bops, (long long)m[ROW_BOPS]);
	if (p->max_ns > 0 && m[ROW_NS] > p->max_ns)
		return qt_error(QT_E_NUMERIC,
				"latency budget %.4f ms is infeasible: the fastest plan of these candidates "
				"takes %.4f ms per sample (as measured by analyze)",
				(double)p->max_ns / 1e6, (double)m[ROW_NS] / 1e6);
	return qt_error(QT_E_NUMERIC,
			"the budgets are each feasible (smallest: %lld bytes, %.4f average weight bits, %lld bit "
			"operations) but no plan of these candidates meets them all at once",
			(long long)m[ROW_BYTES], P > 0 ? (double)m[ROW_WBITS] / (double)P : 0.0,
			(long long)m[ROW_BOPS]);
}

/* Pick, per layer, the setting whose binary the solver set (the largest
 * value, the first on a tie). */
static void read_choice(glp_prob *lp, const struct qt_bitalloc *p, int *choice)
{
	for (int l = 0; l < p->n_layers; l++) {
		double best = -1;
		choice[l] = 0;
		for (int s = 0; s < p->n_settings; s++) {
			double v = glp_mip_col_val(lp, 1 + l * p->n_settings + s);
			if (v > best + 1e-9)
				best = v, choice[l] = s;
		}
	}
}

/*
 * Build and solve the program with the budgets rhs[] (tightened by the
 * caller when a solver tolerance let an answer through over budget).
 * Returns 1 with a choice, 0 when the solver finds no feasible one, -1 on a
 * solver failure.
 */
static int solve_once(const struct qt_bitalloc *p, const int64_t rhs[N_BUDGETS], const int active[N_BUDGETS],
		      int *choice)
{
	int L = p->n_layers, S = p->n_settings, ncol = L * S;
	glp_prob *lp = glp_create_prob();
	glp_set_obj_dir(lp, GLP_MIN);
	glp_add_cols(lp, ncol);
	/* Costs are shifted per layer to start at 0 (exactly one setting per
	 * layer is chosen, so the argmin is unchanged) and scaled so the largest
	 * is 1, keeping GLPK's absolute tolerances meaningful. */
	double big = 0;
	for (int l = 0; l < L; l++) {
		double lo = INFINITY;
		for (int s = 0; s < S; s++)
			lo = fmin(lo, p->cost[(size_t)l * S + s]);
		for (int s = 0; s < S; s++)
			big = fmax(big, p->cost[(size_t)l * S + s] - lo);
	}
	for (int l = 0; l < L; l++) {
		double lo = INFINITY;
		for (int s = 0; s < S; s++)
			lo = fmin(lo, p->cost[(size_t)l * S + s]);
		for (int s = 0; s < S; s++) {
			int j = 1 + l * S + s;
			glp_set_col_kind(lp, j, GLP_BV);
			if (p->allowed && !p->allowed[(size_t)l * S + s])
				glp_set_col_bnds(lp, j, GLP_FX, 0.0, 0.0);
			glp_set_obj_coef(lp, j, big > 0 ? (p->cost[(size_t)l * S + s] - lo) / big : 0.0);
		}
	}
	int nrow = L;
	for (int b = 0; b < N_BUDGETS; b++)
		nrow += active[b];
	glp_add_rows(lp, nrow);
	/* GLPK's sparse triplets are 1-based. */
	size_t nz = (size_t)ncol * (1 + N_BUDGETS) + 1;
	int *ia = malloc(nz * sizeof *ia), *ja = malloc(nz * sizeof *ja);
	double *ar = malloc(nz * sizeof *ar);
	if (!ia || !ja || !ar) {
		free(ia), free(ja), free(ar);
		glp_delete_prob(lp);
		return -1;
	}
	int k = 0, row = 0;
	for (int l = 0; l < L; l++) {
		glp_set_row_bnds(lp, ++row, GLP_FX, 1.0, 1.0);
		for (int s = 0; s < S; s++)
			k++, ia[k] = row, ja[k] = 1 + l * S + s, ar[k] = 1.0;
	}
	for (int b = 0; b < N_BUDGETS; b++) {
		if (!active[b])
			continue;
		glp_set_row_bnds(lp, ++row, GLP_UP, 0.0, (double)rhs[b]);
		for (int l = 0; l < L; l++)
			for (int s = 0; s < S; s++) {
				size_t i = (size_t)l * S + s;
				double a = b == ROW_BYTES ? (double)p->bytes[i]
					   : b == ROW_WBITS ? (double)(p->params[l] * p->wbits[s])
					   : b == ROW_BOPS  ? (double)p->bops[i]
							    : (double)p->ns[i];
				k++, ia[k] = row, ja[k] = 1 + l * S + s, ar[k] = a;
			}
	}
	glp_load_matrix(lp, k, ia, ja, ar);
	free(ia), free(ja), free(ar);
	glp_iocp parm;
	glp_init_iocp(&parm);
	parm.presolve = GLP_ON;
	parm.msg_lev = GLP_MSG_OFF;
	parm.mip_gap = 0.0;
	int was = glp_term_out(GLP_OFF);
	int ret = glp_intopt(lp, &parm);
	glp_term_out(was);
	int status = ret == 0 ? glp_mip_status(lp) : 0;
	int found = -1;
	if (ret == GLP_ENOPFS || ret == GLP_ENODFS || (ret == 0 && status == GLP_NOFEAS))
		found = 0;
	else if (ret == 0 && status == GLP_OPT) {
		read_choice(lp, p, choice);
		found = 1;
	}
	glp_delete_prob(lp);
	return found;
}

enum qt_status qt_bitalloc_solve(const struct qt_bitalloc *p, int *choice_out, struct qt_bitalloc_result *res_out)
{
	enum qt_status st = check_problem(p);
	if (st)
		return st;
	int64_t P = sum_params(p), m[N_BUDGETS];
	int64_t rhs[N_BUDGETS] = {p->max_bytes, wbits_budget(p->max_avg_wbits, P), p->max_bops, p->max_ns};
	int active[N_BUDGETS] = {p->max_bytes > 0, p->max_avg_wbits > 0, p->max_bops > 0, p->max_ns > 0};
	smallest_sums(p, m);
	for (int b = 0; b < N_BUDGETS; b++)
		if (active[b] && m[b] > rhs[b])
			return infeasible(p);
	int *choice = malloc((size_t)p->n_layers * sizeof *choice);
	if (!choice)
		return qt_error(QT_E_NOMEM, "out of memory");
	/* An integer answer that a solver tolerance lets over a budget is sent
	 * back with that budget tightened by the excess; a few rounds suffice,
	 * since every excess is a whole unit or more. */
	for (int round = 0; round < 4; round++) {
		int found = solve_once(p, rhs, active, choice);
		if (found < 0) {
			free(choice);
			return qt_error(QT_E_NUMERIC, "bit allocation: GLPK failed on a %d x %d program", p->n_layers,
					p->n_settings);
		}
		if (found == 0)
			break;
		struct qt_bitalloc_result r;
		if (qt_bitalloc_eval(p, choice, &r)) {
			memcpy(choice_out, choice, (size_t)p->n_layers * sizeof *choice);
			if (res_out)
				*res_out = r;
			free(choice);
			return QT_OK;
		}
		int64_t got[N_BUDGETS] = {r.bytes, r.wbits_sum, r.bops, r.ns};
		for (int b = 0; b < N_BUDGETS; b++)
			if (active[b] && got[b] > rhs[b])
				rhs[b] -= got[b] - rhs[b];
	}
	free(choice);
	return infeasible(p);
}

int qt_parse_size(const char *s, int64_t *bytes_out)
{
	if (!s || !*s)
		return -1;
	char *end = NULL;
	double v = strtod(s, &end);
	if (end == s || !(v >= 0) || !isfinite(v))
		return -1;
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"", 1},       {"B", 1},           {"K", 1e3},          {"KB", 1e3},        {"KiB", 1024.0},
		{"M", 1e6},    {"MB", 1e6},        {"MiB", 1048576.0},  {"G", 1e9},         {"GB", 1e9},
		{"GiB", 1073741824.0}, {"k", 1e3}, {"kB", 1e3},
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(end, units[i].suffix)) {
			double b = floor(v * units[i].mult);
			if (b < 1 || b >= 9007199254740992.0)
				return -1;
			*bytes_out = (int64_t)b;
			return 0;
		}
	return -1;
}
