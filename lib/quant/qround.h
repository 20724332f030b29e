/*
 * The rounding rule of every code, as an inline function so loops over it
 * vectorize (internal; qt_quantize_one in qparams.c is the entry point for
 * any range, and the scale search in wscale.c evaluates it in bulk).
 */
#ifndef QTOOL_LIB_QUANT_QROUND_H
#define QTOOL_LIB_QUANT_QROUND_H

#include <stdint.h>

/*
 * code = clamp(nearbyint(x / scale) + zp, qmin, qmax), ties to even, NaN to
 * qmin. For code ranges up to 2^20 wide (every activation and weight type)
 * it is computed without a libm call, so loops over it vectorize: v = x /
 * scale is first clamped to [qmin - zp - 1, qmax - zp + 1] (NaN goes to the
 * lower end), and then rounded by adding and subtracting 1.5 * 2^23,
 * which in float arithmetic rounds to the nearest integer with ties to even
 * exactly for |v| < 2^22. Values clamped this way round to the same final
 * code as the unclamped ones. Wider ranges (never used for codes) take
 * nearbyintf.
 */
static inline int32_t qt_quantize_small_range(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
	const float magic = 12582912.0f; /* 1.5 * 2^23 */
	const float lo = (float)(qmin - zp - 1), hi = (float)(qmax - zp + 1);
	float v = x / scale;
	v = v >= lo ? v : lo; /* NaN fails the test: lo */
	v = v <= hi ? v : hi;
	/* Without -ffast-math the compiler keeps (v + magic) - magic as written. */
	int32_t q = (int32_t)((v + magic) - magic) + zp;
	return q < qmin ? qmin : q > qmax ? qmax : q;
}

#endif
