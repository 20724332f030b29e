/*
 * The bit-allocation integer program (lib/quant/bitalloc_ilp.c) against
 * exhaustive enumeration on random small instances: the solver's choice is
 * never over any budget and its objective equals the enumerated optimum;
 * when enumeration finds no feasible choice the solver says so and names
 * the smallest feasible budget. Fixed seeds, printed on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/bitalloc.h"
#include "testgraph.h"

#define MAXL 6
#define MAXS 5

struct inst {
	int L, S;
	double cost[MAXL * MAXS];
	int64_t bytes[MAXL * MAXS], bops[MAXL * MAXS], ns[MAXL * MAXS], params[MAXL];
	int wbits[MAXS];
	unsigned char allowed[MAXL * MAXS];
	struct qt_bitalloc p;
};

/* Random instance: sizes grow with the bits, as a layer's do, but with noise
 * so the cheapest setting is not always the one with the fewest bits. */
static void make_inst(struct inst *in, uint64_t seed)
{
	static const int bits_pool[] = {8, 4, 3, 2, 32, 6};
	rng_seed(seed);
	memset(in, 0, sizeof *in);
	in->L = 1 + (int)(urand() * MAXL) % MAXL;
	in->S = 1 + (int)(urand() * MAXS) % MAXS;
	for (int s = 0; s < in->S; s++)
		in->wbits[s] = bits_pool[(int)(urand() * 6) % 6];
	for (int l = 0; l < in->L; l++) {
		in->params[l] = 1 + (int64_t)(urand() * 5000);
		int64_t macs = 1 + (int64_t)(urand() * 100000);
		for (int s = 0; s < in->S; s++) {
			int i = l * in->S + s;
			in->bytes[i] = (in->params[l] * in->wbits[s] + 7) / 8 + (int64_t)(urand() * 200);
			in->bops[i] = macs * in->wbits[s] * (urand() < 0.5 ? 8 : 4);
			/* Times need not follow the bits (a4 or odd widths can be slower). */
			in->ns[i] = 100 + (int64_t)(urand() * 100000);
			/* Some costs tie exactly, some are 0, most fall with more bits. */
			double c = urand() < 0.1 ? 0.0 : urand() / in->wbits[s];
			in->cost[i] = urand() < 0.1 && s > 0 ? in->cost[i - 1] : c;
		}
	}
	in->p = (struct qt_bitalloc){.n_layers = in->L, .n_settings = in->S, .cost = in->cost, .bytes = in->bytes,
				     .params = in->params, .wbits = in->wbits, .bops = in->bops, .ns = in->ns};
}

/* Pin some layers to one setting and forbid some settings of others (as
 * quantize --layer does), keeping one allowed setting per layer. */
static void random_mask(struct inst *in)
{
	for (int l = 0; l < in->L; l++) {
		int pin = urand() < 0.3, keep = (int)(urand() * in->S) % in->S;
		for (int s = 0; s < in->S; s++)
			in->allowed[l * in->S + s] = s == keep || (!pin && urand() < 0.7);
	}
	in->p.allowed = in->allowed;
}

/* Smallest and largest sum over choices of one per-(layer, setting) table. */
static void sum_range(const struct inst *in, const int64_t *t, int64_t *lo, int64_t *hi)
{
	*lo = *hi = 0;
	for (int l = 0; l < in->L; l++) {
		int64_t a = INT64_MAX, b = 0;
		for (int s = 0; s < in->S; s++) {
			int64_t v = t ? t[l * in->S + s] : in->params[l] * in->wbits[s];
			a = v < a ? v : a;
			b = v > b ? v : b;
		}
		*lo += a, *hi += b;
	}
}

/* Exhaustive optimum: 1 and *best when some choice is feasible. */
static int brute(const struct inst *in, double *best)
{
	int choice[MAXL] = {0}, found = 0;
	for (;;) {
		struct qt_bitalloc_result r;
		if (qt_bitalloc_eval(&in->p, choice, &r) && (!found || r.objective < *best))
			*best = r.objective, found = 1;
		int l = 0;
		while (l < in->L && ++choice[l] == in->S)
			choice[l++] = 0;
		if (l == in->L)
			return found;
	}
}

Test(bitalloc, matches_enumeration_and_never_over_budget)
{
	int n_feasible = 0, n_infeasible = 0;
	for (uint64_t seed = 1; seed <= 400; seed++) {
		struct inst in;
		make_inst(&in, seed);
		if (urand() < 0.3)
			random_mask(&in);
		int64_t lo, hi;
		/* Each budget on or off, somewhere from a bit below the smallest
		 * sum to the largest. */
		double u = urand();
		if (u < 0.7) {
			sum_range(&in, in.bytes, &lo, &hi);
			in.p.max_bytes = lo - 50 + (int64_t)(urand() * (double)(hi - lo + 60));
			if (in.p.max_bytes < 1)
				in.p.max_bytes = 1;
		}
		if (urand() < 0.5) {
			sum_range(&in, NULL, &lo, &hi);
			int64_t P = 0;
			for (int l = 0; l < in.L; l++)
				P += in.params[l];
			in.p.max_avg_wbits = ((double)lo + urand() * (double)(hi - lo)) / (double)P * (0.97 + 0.06 * urand());
		}
		if (urand() < 0.3) {
			sum_range(&in, in.bops, &lo, &hi);
			in.p.max_bops = lo + (int64_t)(urand() * (double)(hi - lo + 1)) - (urand() < 0.2 ? 1 : 0);
			if (in.p.max_bops < 1)
				in.p.max_bops = 1;
		}
		if (urand() < 0.3) {
			sum_range(&in, in.ns, &lo, &hi);
			in.p.max_ns = lo + (int64_t)(urand() * (double)(hi - lo + 1)) - (urand() < 0.2 ? 1 : 0);
			if (in.p.max_ns < 1)
				in.p.max_ns = 1;
		}
		double best = 0;
		int feasible = brute(&in, &best);
		int choice[MAXL];
		struct qt_bitalloc_result r;
		enum qt_status st = qt_bitalloc_solve(&in.p, choice, &r);
		if (!feasible) {
			n_infeasible++;
			cr_assert_eq(st, QT_E_NUMERIC, "seed %llu: infeasible instance solved", (unsigned long long)seed);
			cr_assert(strstr(qt_error_msg(), "infeasible") || strstr(qt_error_msg(), "at once"),
				  "seed %llu: message '%s'", (unsigned long long)seed, qt_error_msg());
			continue;
		}
		n_feasible++;
		cr_assert_eq(st, QT_OK, "seed %llu: %s", (unsigned long long)seed, qt_error_msg());
		struct qt_bitalloc_result r2;
		cr_assert(qt_bitalloc_eval(&in.p, choice, &r2), "seed %llu: choice over budget or not allowed",
			  (unsigned long long)seed);
		if (in.p.max_bytes > 0)
			cr_assert_leq(r2.bytes, in.p.max_bytes, "seed %llu", (unsigned long long)seed);
		if (in.p.max_bops > 0)
			cr_assert_leq(r2.bops, in.p.max_bops, "seed %llu", (unsigned long long)seed);
		if (in.p.max_ns > 0)
			cr_assert_leq(r2.ns, in.p.max_ns, "seed %llu", (unsigned long long)seed);
		cr_assert_eq(r.bytes, r2.bytes, "seed %llu", (unsigned long long)seed);
		cr_assert(fabs(r.objective - best) <= 1e-9 * (1 + fabs(best)), "seed %llu: objective %.12g, optimum %.12g",
			  (unsigned long long)seed, r.objective, best);
	}
	/* Both kinds of instance were exercised. */
	cr_assert_gt(n_feasible, 100);
	cr_assert_gt(n_infeasible, 10);
}

Test(bitalloc, infeasible_size_names_the_smallest_budget)
{
	struct inst in;
	make_inst(&in, 7);
	int64_t lo, hi;
	sum_range(&in, in.bytes, &lo, &hi);
	in.p.max_bytes = lo - 1;
	int choice[MAXL];
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, NULL), QT_E_NUMERIC);
	char want[64];
	snprintf(want, sizeof want, "takes %lld bytes", (long long)lo);
	cr_assert(strstr(qt_error_msg(), want), "message '%s' lacks '%s'", qt_error_msg(), want);
	/* At exactly the smallest budget the all-smallest plan is the answer. */
	in.p.max_bytes = lo;
	struct qt_bitalloc_result r;
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, &r), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(r.bytes, lo);
}

Test(bitalloc, unconstrained_takes_each_layers_cheapest)
{
	struct inst in;
	make_inst(&in, 11);
	int choice[MAXL];
	struct qt_bitalloc_result r;
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, &r), QT_OK, "%s", qt_error_msg());
	double want = 0;
	for (int l = 0; l < in.L; l++) {
		double m = INFINITY;
		for (int s = 0; s < in.S; s++)
			m = fmin(m, in.cost[l * in.S + s]);
		want += m;
	}
	cr_assert(fabs(r.objective - want) <= 1e-12 * (1 + want));
}

Test(bitalloc, rejects_malformed_problems)
{
	struct inst in;
	make_inst(&in, 3);
	int choice[MAXL];
	in.cost[0] = NAN;
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, NULL), QT_E_INVALID_ARG);
	make_inst(&in, 3);
	in.p.bops = NULL;
	in.p.max_bops = 5;
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, NULL), QT_E_INVALID_ARG);
	in.p.max_bops = 0;
	unsigned char none[MAXL * MAXS] = {0};
	in.p.allowed = none;
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, NULL), QT_E_INVALID_ARG);
	in.p.allowed = NULL;
	in.p.n_layers = 0;
	cr_assert_eq(qt_bitalloc_solve(&in.p, choice, NULL), QT_E_INVALID_ARG);
}

Test(bitalloc, parse_size)
{
	int64_t b;
	cr_assert(!qt_parse_size("120KB", &b) && b == 120000);
	cr_assert(!qt_parse_size("120KiB", &b) && b == 122880);
	cr_assert(!qt_parse_size("1.5MB", &b) && b == 1500000);
	cr_assert(!qt_parse_size("1.5M", &b) && b == 1500000);
	cr_assert(!qt_parse_size("4096", &b) && b == 4096);
	cr_assert(!qt_parse_size("4096B", &b) && b == 4096);
	cr_assert(qt_parse_size("12XB", &b));
	cr_assert(qt_parse_size("", &b));
	cr_assert(qt_parse_size("-5KB", &b));
	cr_assert(qt_parse_size("0.1", &b));
	cr_assert(qt_parse_size("nan", &b));
}
