/*
 * Weights in a number format of qtool/numfmt.h (quant_int.h,
 * qt_wformat_round): round to nearest on the format's grid. Float is
 * allowed here (offline); the encoders compute in binary64.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "quant/quant_int.h"

/* Plain minifloat: one FP32 scale per (row, group), max|w| / element max. */
static void round_plain(struct qt_qlayer *L, enum qt_numfmt f)
{
	int64_t gs = L->grid.group_size, ng = qt_wgrid_ngroups(&L->grid);
	double emax = qt_numfmt_elem_max(f);
	float top = 0;
	for (int64_t c = 0; c < L->C; c++)
		for (int64_t j = 0; j < ng; j++) {
			float m = 0;
			for (int64_t k = j * gs; k < L->K && k < (j + 1) * gs; k++)
				m = fmaxf(m, fabsf(L->w[c * L->K + k]));
			float s = (float)(m / emax);
			L->grid.scale[c * ng + j] = m > 0 ? fmaxf(s, FLT_MIN) : 0;
			top = fmaxf(top, L->grid.scale[c * ng + j]);
		}
	for (int64_t i = 0; i < L->C * ng; i++)
		if (L->grid.scale[i] == 0)
			L->grid.scale[i] = top > 0 ? top : 1; /* an all-zero slot: any scale codes it as 0 */
	/* Per tensor: every row takes the largest. */
	if (L->scheme == QT_QSCHEME_TENSOR)
		for (int64_t c = 0; c < L->C; c++)
			L->grid.scale[c] = top > 0 ? top : 1;
	for (int64_t c = 0; ng > 1 && c < L->C; c++)
		qt_wscale_round_groups(L->grid.scale + c * ng, ng);
	for (int64_t c = 0; c < L->C; c++)
		for (int64_t k = 0; k < L->K; k++) {
			float s = L->grid.scale[c * ng + k / gs];
			L->codes[c * L->K + k] = (int32_t)qt_numfmt_encode_div(f, L->w[c * L->K + k], s);
		}
}

enum qt_status qt_wformat_round(struct qt_qlayer *L)
{
	enum qt_numfmt f = L->plan->wfmt;
	int blk = qt_numfmt_block(f);
	L->grid.fmt = f;
	if (!blk) {
		round_plain(L, f);
		return QT_OK;
	}
	int64_t ng = qt_wgrid_ngroups(&L->grid);
	if (!(L->scale_code = malloc((size_t)(L->C * ng))))
		return qt_error(QT_E_NOMEM, "out of memory");
	float amax = 0;
	for (int64_t i = 0; i < L->C * L->K; i++)
		amax = fmaxf(amax, fabsf(L->w[i]));
	L->tscale = qt_nvfp4_tensor_scale(amax);
	uint32_t codes[QT_MX_BLOCK];
	for (int64_t c = 0; c < L->C; c++)
		for (int64_t j = 0; j < ng; j++) {
			const float *x = L->w + c * L->K + j * blk;
			int n = L->K - j * blk < blk ? (int)(L->K - j * blk) : blk;
			uint8_t b = f == QT_FMT_NVFP4 ? qt_nvfp4_quantize_block(L->tscale, x, n, codes)
						      : qt_mx_quantize_block(f, L->plan->mx_rule, x, n, codes);
			L->scale_code[c * ng + j] = b;
			L->grid.scale[c * ng + j] = f == QT_FMT_NVFP4 ? qt_nvfp4_scale(L->tscale, b) : qt_e8m0_decode(b);
			for (int i = 0; i < n; i++)
				L->codes[c * L->K + j * blk + i] = (int32_t)codes[i];
		}
	return QT_OK;
}
