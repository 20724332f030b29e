/*
 * Reference quantized elementwise Add and Mul on uint8 activations, and the
 * preparation of their fixed-point parameters. Integer only at run time; the
 * *_prepare functions run at model preparation and may use double.
 */
#include <assert.h>
#include <math.h>

#include "kernels/kernels.h"

/* Check a scale / zero point / clamp triple; message names `what`. */
static enum qt_status check_q(const char *what, double s, int32_t z)
{
	if (!isfinite(s) || s <= 0)
		return qt_error(QT_E_NUMERIC, "%s scale %g must be finite and positive", what, s);
	if (z < 0 || z > 255)
		return qt_error(QT_E_INVALID_ARG, "%s zero point %d is outside [0, 255]", what, (int)z);
	return QT_OK;
}

static enum qt_status check_clamp(int32_t qmin, int32_t qmax)
{
	if (qmin < 0 || qmin > qmax || qmax > 255)
		return qt_error(QT_E_INVALID_ARG, "output clamp [%d, %d] is not within [0, 255]",
				(int)qmin, (int)qmax);
	return QT_OK;
}

/* real -> (m, n); below 2^-32 the term always rounds to 0, so m = 0. */
static enum qt_status mult_or_zero(double real, int32_t *m, int *n, const char *what)
{
	if (isfinite(real) && real > 0 && real < ldexp(1.0, -32)) {
		*m = 0;
		*n = 1;
		return QT_OK;
	}
	if (!isfinite(real) || real >= ldexp(1.0, 30))
		return qt_error(QT_E_UNSUPPORTED, "%s multiplier %g is too large (must be < 2^30)",
				what, real);
	return qt_quantize_multiplier(real, m, n);
}

/*
 * Quantized Add parameters (see kernels.h): ra = s_a / (2 max), rb = s_b /
 * (2 max), ro = 2 max / (s_y 2^20). Errors leave *out untouched.
 */
enum qt_status qt_qadd_prepare(double s_a, int32_t za, double s_b, int32_t zb, double s_y,
			       int32_t zo, int32_t qmin, int32_t qmax, struct qt_qadd_params *out)
{
	enum qt_status st;
	if ((st = check_q("Add input A", s_a, za)) || (st = check_q("Add input B", s_b, zb)) ||
	    (st = check_q("Add output", s_y, zo)) || (st = check_clamp(qmin, qmax)))
		return st;
	double smax = s_a > s_b ? s_a : s_b;
	struct qt_qadd_params p = {.za = za, .zb = zb, .zo = zo, .qmin = qmin, .qmax = qmax};
	if ((st = mult_or_zero(s_a / (2 * smax), &p.ma, &p.na, "Add input A")) ||
	    (st = mult_or_zero(s_b / (2 * smax), &p.mb, &p.nb, "Add input B")) ||
	    (st = mult_or_zero(2 * smax / ldexp(s_y, QT_QADD_LSHIFT), &p.mo, &p.no, "Add output")))
		return st;
	*out = p;
	return QT_OK;
}

/* Quantized Mul parameters: one multiplier s_a s_b / s_y. */
enum qt_status qt_qmul_prepare(double s_a, int32_t za, double s_b, int32_t zb, double s_y,
			       int32_t zo, int32_t qmin, int32_t qmax, struct qt_qmul_params *out)
{
	enum qt_status st;
	if ((st = check_q("Mul input A", s_a, za)) || (st = check_q("Mul input B", s_b, zb)) ||
	    (st = check_q("Mul output", s_y, zo)) || (st = check_clamp(qmin, qmax)))
		return st;
	struct qt_qmul_params p = {.za = za, .zb = zb, .zo = zo, .qmin = qmin, .qmax = qmax};
	if ((st = mult_or_zero(s_a * s_b / s_y, &p.m, &p.n, "Mul")))
		return st;
	*out = p;
	return QT_OK;
}

/*
 * Add: xa = (qa - za) 2^20 (|xa| < 2^28); ta = rule(xa) with real <= 1/2, so
 * |ta| <= 2^27 + 1 and |ta + tb| < 2^29 fits int32; y = rule(ta + tb).
 */
void qt_qadd_u8__ref(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,
		     size_t b_stride, uint8_t *y, const struct qt_qadd_params *p)
{
	for (size_t i = 0; i < n; i++) {
		int32_t xa = ((int32_t)a[i * a_stride] - p->za) * (INT32_C(1) << QT_QADD_LSHIFT);
		int32_t xb = ((int32_t)b[i * b_stride] - p->zb) * (INT32_C(1) << QT_QADD_LSHIFT);
		int64_t t = qt_rq_mulshift(xa, p->ma, p->na) + qt_rq_mulshift(xb, p->mb, p->nb);
		assert(t > -(INT64_C(1) << 30) && t < (INT64_C(1) << 30));
		int64_t v = qt_rq_mulshift((int32_t)t, p->mo, p->no);
		y[i] = qt_rq_clamp(v, p->zo, p->qmin, p->qmax);
	}
}

/* Mul: (qa - za)(qb - zb) in [-65025, 65025], then the rule. */
void qt_qmul_u8__ref(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,
		     size_t b_stride, uint8_t *y, const struct qt_qmul_params *p)
{
	for (size_t i = 0; i < n; i++) {
		int32_t prod = ((int32_t)a[i * a_stride] - p->za) * ((int32_t)b[i * b_stride] - p->zb);
		y[i] = qt_rq_clamp(qt_rq_mulshift(prod, p->m, p->n), p->zo, p->qmin, p->qmax);
	}
}
