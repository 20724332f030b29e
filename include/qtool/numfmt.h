/*
 * Number formats beside the integers: minifloats (FP8 E4M3 and E5M2, FP6
 * E3M2 and E2M3, FP4 E2M1), OCP Microscaling blocks (MX v1.0: 32 elements
 * sharing an E8M0 power-of-two scale) and NVFP4 (E2M1 in blocks of 16 with an
 * FP8 E4M3 block scale and an FP32 tensor scale). lib/quant/numfmt.c is the
 * reference implementation the quantizer, the .qmod reader, the float
 * simulation and the runtime all use.
 *
 * Element codes are the format's bits as an unsigned integer (sign in the
 * top bit): 8 bits for FP8, 6 for FP6, 4 for FP4; MXINT8's elements are int8
 * codes in [-127, 127] meaning code * 2^-6 (the spec's 1.6 fixed point; -128
 * is not used, so the grid is symmetric).
 *
 * Rounding (encode): round to nearest, ties to even mantissa, computed
 * exactly in binary64 (every float and every scaled float is exact there).
 * Saturating: a finite value beyond the largest finite element becomes that
 * element (same sign). Infinities: E5M2 encodes them (IEEE-like), every other
 * element type saturates them to its largest finite value. NaN: E4M3 and E5M2
 * encode it as 0x7F with the input's sign (E4M3's only NaN, E5M2's canonical
 * one); FP6, FP4 and MXINT8 have no NaN and give +0.
 *
 * Float is allowed here: the formats are decoded to FP32 (no integer kernel).
 */
#ifndef QTOOL_NUMFMT_H
#define QTOOL_NUMFMT_H

#include "qtool/qtool.h"

/* The number formats of a plan entry and of a .qmod QPARAMS record (byte 35;
 * the codes are part of docs/FORMAT.md). QT_FMT_INT is the integer grid of
 * the plan's bits (int8/int4/int3/int2), everything qtool did before. */
enum qt_numfmt {
	QT_FMT_INT = 0,
	QT_FMT_FP8_E4M3 = 1,
	QT_FMT_FP8_E5M2 = 2,
	QT_FMT_FP6_E3M2 = 3,
	QT_FMT_FP6_E2M3 = 4,
	QT_FMT_FP4_E2M1 = 5,
	QT_FMT_MXINT8 = 6,
	QT_FMT_MXFP8_E4M3 = 7,
	QT_FMT_MXFP8_E5M2 = 8,
	QT_FMT_MXFP6_E3M2 = 9,
	QT_FMT_MXFP6_E2M3 = 10,
	QT_FMT_MXFP4 = 11,
	QT_FMT_NVFP4 = 12,
	QT_FMT_COUNT
};

#define QT_MX_BLOCK 32     /* OCP MX v1.0 block size */
#define QT_NVFP4_BLOCK 16  /* NVFP4 block size */
#define QT_E8M0_NAN 0xFF   /* E8M0 byte that means NaN; others are 2^(b - 127) */

/*
 * How an MX block's shared exponent e (scale 2^e) is chosen from the block's
 * largest magnitude m, for an element type whose largest finite value is
 * M = (1.f) * 2^emax:
 *  - QT_MX_FLOOR, the spec's rule: e = floor(log2 m) - emax. m / 2^e lies in
 *    [2^emax, 2^(emax+1)), which can exceed M: FP4 E2M1 (M = 6, emax = 2)
 *    clips block maxima in (6, 8) x 2^e to 6 (up to 25% for the largest value).
 *  - QT_MX_CEIL, rounded up: the smallest e with m / 2^e <= M, i.e. the floor
 *    rule plus one exactly when the floor rule would saturate. Nothing clips;
 *    every element gets half the resolution of the floor rule's.
 *  - QT_MX_BEST: per block, whichever of the two gives the smaller squared
 *    error (ties: the floor rule). Costs nothing in storage.
 * By data (docs/RESULTS.md, MXFP4 weights): the floor rule wins on the
 * bundled models although the other two have the smaller weight error
 * (ResNet: 87.9% top-1 against 79.3% and 78.1%); quantize defaults to it.
 * e is clamped to the E8M0 range [-127, 127]; an all-zero block gets 2^-127.
 */
enum qt_mx_rule { QT_MX_FLOOR = 0, QT_MX_CEIL = 1, QT_MX_BEST = 2 };

/* --- Element types (by dtype: QT_DTYPE_FP8_E4M3, _FP8_E5M2, _FP6_E3M2,
 * _FP6_E2M3, _FP4_E2M1) --- */

/* 1 for the minifloat dtypes above. */
QT_API int qt_minifloat_is(enum qt_dtype et);
/* Value of code (its low bits); NaN or +-Inf for E4M3's/E5M2's special codes. */
QT_API float qt_minifloat_decode(enum qt_dtype et, uint32_t code);
/* Code of x: nearest, ties to even, saturating (rules above). */
QT_API uint32_t qt_minifloat_encode(enum qt_dtype et, float x);
/* Largest finite value: 448, 57344, 28, 7.5, 6. */
QT_API float qt_minifloat_max(enum qt_dtype et);
/* 1 when code is a finite value of et (not NaN or Inf, within the width). */
QT_API int qt_minifloat_finite(enum qt_dtype et, uint32_t code);

/* --- Formats --- */

/* "fp8_e4m3", "mxfp4", ... ("int" for QT_FMT_INT); "invalid" when out of range. */
QT_API const char *qt_numfmt_name(enum qt_numfmt f);
/* Parse a format name: int8, int4, int3, int2 (QT_FMT_INT and *bits_out set)
 * or one of qt_numfmt_name's (*bits_out = the element bits). 0 on success. */
QT_API int qt_numfmt_parse(const char *s, enum qt_numfmt *f_out, int *bits_out);
/* The list of names for messages: "int8, int4, ..., nvfp4". */
QT_API const char *qt_numfmt_names(void);
/* Dtype of the element codes (QT_DTYPE_I8 for MXINT8); UNDEFINED for INT. */
QT_API enum qt_dtype qt_numfmt_elem(enum qt_numfmt f);
/* Fixed block size: 32 for MX formats, 16 for NVFP4, 0 otherwise. */
QT_API int qt_numfmt_block(enum qt_numfmt f);
/* Value of an element code of f (MXINT8: code * 2^-6, code as int8). */
QT_API float qt_numfmt_elem_decode(enum qt_numfmt f, uint32_t code);
/* Code of x (already divided by its scale), saturating, ties to even. */
QT_API uint32_t qt_numfmt_elem_encode(enum qt_numfmt f, float x);
/* Code of x / scale, the quotient exact in binary64 (the rule the plain
 * minifloat weights and activations use with their FP32 scale). */
QT_API uint32_t qt_numfmt_encode_div(enum qt_numfmt f, float x, float scale);
/* Largest finite element value (127/64 for MXINT8). */
QT_API float qt_numfmt_elem_max(enum qt_numfmt f);
/* 1 when code is a finite element of f that a weight may hold. */
QT_API int qt_numfmt_code_ok(enum qt_numfmt f, uint32_t code);

/* E8M0 scale byte: 2^(b - 127), NaN for QT_E8M0_NAN. */
QT_API float qt_e8m0_decode(uint8_t b);

/*
 * Quantize one MX block of n values (n <= QT_MX_BLOCK; a tensor's last block
 * may be short) of MX format f: returns the E8M0 scale byte and writes n
 * element codes; x[i] ~ 2^(b-127) * elem_decode(codes[i]). A block with a
 * NaN or an infinity gets QT_E8M0_NAN and codes 0 (the spec's NaN block).
 */
QT_API uint8_t qt_mx_quantize_block(enum qt_numfmt f, enum qt_mx_rule rule, const float *x, int n,
				    uint32_t *codes);

/*
 * NVFP4. Tensor scale for a tensor whose largest magnitude is amax:
 * amax / (448 * 6), so the largest block scale is E4M3's largest; 1 when
 * amax is 0 or not finite. A block of n <= 16 values then gets the E4M3 byte
 * of amax_block / 6 / tscale (nearest, ties to even, saturating; at least
 * the smallest positive code 0x01, so the scale is never 0), returned, and
 * codes[i] = e2m1(x[i] / qt_nvfp4_scale(tscale, byte)).
 */
QT_API float qt_nvfp4_tensor_scale(float amax);
QT_API float qt_nvfp4_scale(float tscale, uint8_t byte);
QT_API uint8_t qt_nvfp4_quantize_block(float tscale, const float *x, int n, uint32_t *codes);

/*
 * Fake quantization (quantize, then decode) in place of n values of one row,
 * cut into blocks along the row for block formats. `scale` is the FP32
 * scale of a plain minifloat format (x ~ scale * elem) or NVFP4's tensor
 * scale; ignored by MX formats (their block scales are computed here, by
 * `rule`). QT_FMT_INT is not handled (x unchanged).
 */
QT_API void qt_numfmt_fake_quant(enum qt_numfmt f, enum qt_mx_rule rule, float scale, float *x, int64_t n);

#endif
