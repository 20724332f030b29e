/*
 * Empirical bias correction (Nagel et al., data-free quantization, in its
 * data-driven form): quantizing a layer's weights shifts the mean of its
 * outputs; subtract that shift from the bias.
 *
 * A layer's output before its activation is linear in its input rows, so
 * the mean output of channel c over every row of every calibration sample is
 * W[c] . mean(x). The shift is the quantized layer on the inputs the
 * quantized model gives it, minus the FP32 layer on the FP32 model's:
 *   delta[c] = sum_k Wq[c][k] mean_q[k] - W[c][k] mean_fp[k]
 * In sequential mode mean_q comes from the partly quantized model, so the
 * correction also absorbs the mean error the earlier layers pass on.
 *
 * Float: double sums; the corrected bias is float and becomes int32 at the
 * finalize stage like any bias.
 */
#include "quant/quant_int.h"

void qt_biascorr_apply(struct qt_qlayer *L, const double *mean_q)
{
	const double *mean_fp = L->mean_fp ? L->mean_fp : mean_q;
	int64_t ng = (L->K + L->grid.group_size - 1) / L->grid.group_size;
	int64_t rows_per_group = L->C / L->groups;
	if (!L->bias)
		return;
	for (int64_t c = 0; c < L->C; c++) {
		int64_t gi = c / rows_per_group;
		const double *mq = mean_q + gi * L->K, *mf = mean_fp + gi * L->K;
		double d = 0;
		for (int64_t k = 0; k < L->K; k++) {
			double wq = (double)L->grid.scale[c * ng + k / L->grid.group_size] *
				    qt_wgrid_elem(&L->grid, L->codes[c * L->K + k]);
			d += wq * mq[k] - (double)L->w[c * L->K + k] * mf[k];
		}
		L->bias[c] = (float)((double)L->bias[c] - d);
	}
}
