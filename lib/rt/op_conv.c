/*
 * FP32 kernels for convolution and pooling (see ops.h for the contract):
 * Conv, ConvTranspose, MaxPool, AveragePool, GlobalAveragePool and
 * GlobalMaxPool.
 *
 * 1-D, 2-D and 3-D spatial shapes share one code path: a problem with fewer
 * spatial dims is lifted to 3-D with leading unit dims (size 1, kernel 1,
 * stride 1, dilation 1, no padding), so every loop is written once over
 * (d, h, w). A "line" below is one (d, h) pair: a run of W pixels.
 *
 * Float rule: Conv and ConvTranspose multiply with OpenBLAS cblas_sgemm
 * (float accumulation, OpenBLAS's order; the bias is the initial value of the
 * sum). The depthwise direct loop and col2im accumulate in float, tap by tap,
 * after the bias. Average pools sum in double. MaxPool also handles int8 and
 * uint8 (opset 12); everything else is float32 only.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "pool.h"

#define SP         3                  /* spatial dims after lifting */
#define ATTR_MAX   ((int64_t)1 << 30) /* bound on kernel, stride, dilation, pad values */
#define COL_BUDGET ((int64_t)1 << 22) /* floats per col2im chunk (16 MiB) */
#define COL_CHUNK  ((int64_t)1 << 18) /* floats per conv im2col chunk (1 MiB: stays in L2) */
#define CONV_MIN_ITEMS 8              /* split a conv's output channels below this many chunks */
#define POOL_MAX_ROWS  64             /* kernel lines (kd, kh) of a max pool taken line by line */
#define CONV_MIN_MROWS 32             /* ... into slices of a multiple of this many channels */

enum auto_pad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

/* Spatial geometry, lifted to 3-D: model spatial dim i is slot SP - nsp + i. */
struct geom {
	int nsp; /* spatial dims of the model, 1..3 */
	int64_t in[SP], out[SP], k[SP], s[SP], d[SP], pb[SP], pe[SP];
};

static enum qt_status need_f32(const struct qt_op_args *a, const struct qt_tensor *t, const char *what)
{
	if (!t)
		return qt_op_error(a, QT_E_FORMAT, "required input %s is missing", what);
	if (t->dtype != QT_DTYPE_F32)
		return qt_op_error(a, QT_E_UNSUPPORTED, "input %s is %s; only float32 is supported", what,
				   qt_dtype_name(t->dtype));
	return QT_OK;
}

static int64_t prod3(const int64_t *v)
{
	return v[0] * v[1] * v[2];
}

/* Checked a * b for non-negative operands; 0 on overflow. */
static int mul_ok(int64_t x, int64_t y, int64_t *out)
{
	return !__builtin_mul_overflow(x, y, out);
}

/* Lifted slot of model spatial dim i. */
static int slot(const struct geom *g, int i)
{
	return SP - g->nsp + i;
}

/* X must be (N, C, D1 [, D2 [, D3]]); set up an identity geometry for it. */
static enum qt_status geom_init(const struct qt_op_args *a, const struct qt_tensor *x, struct geom *g)
{
	if (x->rank < 3 || x->rank > 2 + SP) {
		char s[96];
		return qt_op_error(a, x->rank < 3 ? QT_E_FORMAT : QT_E_UNSUPPORTED,
				   "input X %s must be N x C x D1 [x D2 [x D3]] (1 to 3 spatial dims)",
				   qt_shape_str(s, sizeof s, x->rank, x->dims));
	}
	g->nsp = x->rank - 2;
	for (int i = 0; i < SP; i++) {
		g->in[i] = g->out[i] = g->k[i] = g->s[i] = g->d[i] = 1;
		g->pb[i] = g->pe[i] = 0;
	}
	for (int i = 0; i < g->nsp; i++)
		g->in[slot(g, i)] = x->dims[2 + i];
	return QT_OK;
}

/*
 * Read the ints attribute `name` (one value per spatial dim) into the lifted
 * slots of v, leaving v alone when it is absent or empty. Values must lie in
 * [lo, ATTR_MAX].
 */
static enum qt_status spatial_attr(const struct qt_op_args *a, const struct geom *g, const char *name, int64_t lo,
				   int64_t *v)
{
	const int64_t *vals;
	int n = qt_node_attr_ints(a->node, name, &vals);
	if (n == 0)
		return QT_OK;
	if (n != g->nsp)
		return qt_op_error(a, QT_E_FORMAT, "attribute %s has %d values but the input has %d spatial dims", name,
				   n, g->nsp);
	for (int i = 0; i < n; i++) {
		if (vals[i] < lo || vals[i] > ATTR_MAX)
			return qt_op_error(a, QT_E_FORMAT, "%s[%d] = %lld is outside [%lld, %lld]", name, i,
					   (long long)vals[i], (long long)lo, (long long)ATTR_MAX);
		v[slot(g, i)] = vals[i];
	}
	return QT_OK;
}

/* pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...], each in [0, ATTR_MAX]. */
static enum qt_status pads_attr(const struct qt_op_args *a, struct geom *g)
{
	const int64_t *vals;
	int n = qt_node_attr_ints(a->node, "pads", &vals);
	if (n == 0)
		return QT_OK;
	if (n != 2 * g->nsp)
		return qt_op_error(a, QT_E_FORMAT,
				   "attribute pads has %d values but the input has %d spatial dims (needs %d)", n,
				   g->nsp, 2 * g->nsp);
	for (int i = 0; i < n; i++)
		if (vals[i] < 0 || vals[i] > ATTR_MAX)
			return qt_op_error(a, QT_E_FORMAT, "pads[%d] = %lld is outside [0, %lld]", i,
					   (long long)vals[i], (long long)ATTR_MAX);
	for (int i = 0; i < g->nsp; i++) {
		g->pb[slot(g, i)] = vals[i];
		g->pe[slot(g, i)] = vals[g->nsp + i];
	}
	return QT_OK;
}

static enum qt_status read_auto_pad(const struct qt_op_args *a, enum auto_pad *out)
{
	const char *s = qt_node_attr_str(a->node, "auto_pad", "NOTSET");
	if (strcmp(s, "NOTSET") == 0 || s[0] == '\0')
		*out = PAD_NOTSET;
	else if (strcmp(s, "SAME_UPPER") == 0)
		*out = PAD_SAME_UPPER;
	else if (strcmp(s, "SAME_LOWER") == 0)
		*out = PAD_SAME_LOWER;
	else if (strcmp(s, "VALID") == 0)
		*out = PAD_VALID;
	else
		return qt_op_error(a, QT_E_FORMAT, "auto_pad \"%.32s\" is not NOTSET, SAME_UPPER, SAME_LOWER or VALID",
				   s);
	return QT_OK;
}

/*
 * Output sizes (and, for SAME_*, the pads) of Conv and the pools. ceil_mode
 * (pools) rounds the window count up but, like PyTorch and onnxruntime, drops
 * a last window that would start beyond the input and its begin padding.
 */
static enum qt_status fwd_geometry(const struct qt_op_args *a, struct geom *g, enum auto_pad ap, int ceil_mode)
{
	for (int j = 0; j < g->nsp; j++) {
		int i = slot(g, j);
		/* k, d <= 2^30 and in < 2^34 (tensor size limit): no overflow below. */
		int64_t ek = (g->k[i] - 1) * g->d[i] + 1, in = g->in[i], s = g->s[i];
		if (ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
			int64_t out = (in + s - 1) / s;
			int64_t total = (out - 1) * s + ek - in;
			if (total < 0)
				total = 0;
			g->pb[i] = ap == PAD_SAME_UPPER ? total / 2 : total - total / 2;
			g->pe[i] = total - g->pb[i];
			g->out[i] = out;
			continue;
		}
		if (ap == PAD_VALID)
			g->pb[i] = g->pe[i] = 0;
		/* A pad as wide as the window only adds outputs that read nothing but
		 * padding; refused, so a file's pads cannot ask for an unbounded output. */
		if (g->pb[i] >= ek || g->pe[i] >= ek)
			return qt_op_error(a, QT_E_UNSUPPORTED,
					   "spatial dim %d: pads %lld and %lld must be smaller than the kernel extent %lld", j,
					   (long long)g->pb[i], (long long)g->pe[i], (long long)ek);
		int64_t span = in + g->pb[i] + g->pe[i] - ek;
		if (span < 0)
			return qt_op_error(a, QT_E_FORMAT,
					   "spatial dim %d: kernel extent %lld is larger than the padded input (%lld)",
					   j, (long long)ek, (long long)(in + g->pb[i] + g->pe[i]));
		int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
		if (ceil_mode && out > 1 && (out - 1) * s >= in + g->pb[i])
			out--;
		g->out[i] = out;
	}
	return QT_OK;
}

/*
 * The indices t in [lo, hi), clamped to [0, count), for which
 * 0 <= off + t * step < limit (step >= 1). Used both for the output pixels a
 * kernel tap reaches and for the kernel taps a pooling window keeps.
 */
static void valid_range(int64_t off, int64_t step, int64_t limit, int64_t count, int64_t *lo, int64_t *hi)
{
	int64_t l = off >= 0 ? 0 : (-off + step - 1) / step;
	int64_t h = limit - 1 - off < 0 ? 0 : (limit - 1 - off) / step + 1;
	if (h > count)
		h = count;
	if (l > h)
		l = h;
	*lo = l;
	*hi = h;
}

/* Interior output pixels of a line: [lo, hi) have every kw tap inside the input. */
static void interior(const struct geom *g, int64_t *lo, int64_t *hi)
{
	const int64_t s2 = g->s[2], pb = g->pb[2], last = g->in[2] - 1 + pb - (g->k[2] - 1) * g->d[2];
	int64_t l = (pb + s2 - 1) / s2, h = last < 0 ? 0 : last / s2 + 1;
	if (h > g->out[2])
		h = g->out[2];
	*lo = l < h ? l : h;
	*hi = h;
}

/* Y's shape: (N, channels, out spatial dims). */
static enum qt_status alloc_out(const struct qt_op_args *a, int o, enum qt_dtype dt, const struct geom *g, int64_t n,
				int64_t c)
{
	int64_t dims[2 + SP] = {n, c};
	for (int i = 0; i < g->nsp; i++)
		dims[2 + i] = g->out[slot(g, i)];
	enum qt_status st = qt_tensor_alloc(&a->out[o], dt, 2 + g->nsp, dims);
	return st ? qt_op_error(a, st, "output %d: %s", o, qt_error_msg()) : QT_OK;
}

/* Fill each (n, m) output plane with bias[m]. */
static void fill_bias(float *y, const float *bias, int64_t N, int64_t M, int64_t P)
{
	for (int64_t n = 0; n < N; n++)
		for (int64_t m = 0; m < M; m++) {
			float *p = y + (n * M + m) * P;
			for (int64_t i = 0; i < P; i++)
				p[i] = bias[m];
		}
}

/*
 * Gather the receptive fields of output lines [l0, l1) of a cg-channel input
 * plane stack into col, row-major (cg * K) x ((l1 - l0) * out[2]); padding
 * reads as 0. This call fills the rows of channels [c0, c1).
 */
static void im2col(const float *x, int64_t c0, int64_t c1, const struct geom *g, int64_t l0, int64_t l1, float *col)
{
	const int64_t W = g->out[2], np = (l1 - l0) * W, s2 = g->s[2];
	float *row = col + c0 * prod3(g->k) * np;
	for (int64_t c = c0; c < c1; c++)
		for (int64_t kd = 0; kd < g->k[0]; kd++)
			for (int64_t kh = 0; kh < g->k[1]; kh++)
				for (int64_t kw = 0; kw < g->k[2]; kw++, row += np) {
					int64_t off = kw * g->d[2] - g->pb[2], lo, hi;
					valid_range(off, s2, g->in[2], W, &lo, &hi);
					for (int64_t l = l0; l < l1; l++) {
						int64_t id = (l / g->out[1]) * g->s[0] - g->pb[0] + kd * g->d[0];
						int64_t ih = (l % g->out[1]) * g->s[1] - g->pb[1] + kh * g->d[1];
						float *dst = row + (l - l0) * W;
						if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1]) {
							memset(dst, 0, (size_t)W * sizeof *dst);
							continue;
						}
						const float *src = x + ((c * g->in[0] + id) * g->in[1] + ih) * g->in[2];
						memset(dst, 0, (size_t)lo * sizeof *dst);
						if (s2 == 1 && hi > lo)
							memcpy(dst + lo, src + lo + off,
							       (size_t)(hi - lo) * sizeof *dst);
						else
							for (int64_t ow = lo; ow < hi; ow++)
								dst[ow] = src[ow * s2 + off];
						memset(dst + hi, 0, (size_t)(W - hi) * sizeof *dst);
					}
				}
}

/*
 * One output line of a depthwise conv: dst[ow] += sum over the taps in `rows`
 * (n_rows input lines, each with its kernel row of g->k[2] weights) of
 * w * x, for ow in [0, W). Per element the taps are added in (row, kw) order,
 * each as a float multiply then a float add, and taps outside the input are
 * skipped: the sum the plain tap-by-tap loop computes. Interior pixels (every
 * kw inside the line) take all taps of a row in one pass, so the line is
 * loaded and stored once per row instead of once per tap.
 */
static void dw_line(float *restrict dst, const float *const *src, const float *const *wt, int n_rows,
		    const struct geom *g)
{
	const int64_t W = g->out[2], s2 = g->s[2], d2 = g->d[2], k2 = g->k[2], pb = g->pb[2];
	int64_t lo, hi;
	interior(g, &lo, &hi);
	for (int64_t ow = 0; ow < W; ow++) {
		if (ow == lo && hi > lo) {
			ow = hi - 1; /* the interior is done below */
			continue;
		}
		float acc = dst[ow];
		for (int r = 0; r < n_rows; r++)
			for (int64_t kw = 0; kw < k2; kw++) {
				int64_t iw = ow * s2 - pb + kw * d2;
				if (iw >= 0 && iw < g->in[2])
					acc += wt[r][kw] * src[r][iw];
			}
		dst[ow] = acc;
	}
	if (hi <= lo)
		return;
	for (int r = 0; r < n_rows; r++) {
		const float *x = src[r] - pb;
		const float *w = wt[r];
		if (k2 == 3 && s2 == 1 && d2 == 1) {
			const float w0 = w[0], w1 = w[1], w2 = w[2];
			for (int64_t ow = lo; ow < hi; ow++) {
				float acc = dst[ow];
				acc += w0 * x[ow];
				acc += w1 * x[ow + 1];
				acc += w2 * x[ow + 2];
				dst[ow] = acc;
			}
		} else if (k2 == 3 && s2 == 2 && d2 == 1) {
			const float w0 = w[0], w1 = w[1], w2 = w[2];
			for (int64_t ow = lo; ow < hi; ow++) {
				float acc = dst[ow];
				acc += w0 * x[2 * ow];
				acc += w1 * x[2 * ow + 1];
				acc += w2 * x[2 * ow + 2];
				dst[ow] = acc;
			}
		} else {
			for (int64_t ow = lo; ow < hi; ow++) {
				float acc = dst[ow];
				for (int64_t kw = 0; kw < k2; kw++)
					acc += w[kw] * x[ow * s2 + kw * d2];
				dst[ow] = acc;
			}
		}
	}
}

struct dw_job {
	const float *x, *w;
	float *y;
	const struct geom *g;
	int64_t C, M;
};

/*
 * Depthwise convolution (one input channel per group, any channel
 * multiplier): a direct loop, since one small sgemm per channel is slow.
 * y holds the bias on entry; each output pixel adds w * x tap by tap in
 * (kd, kh, kw) order (float accumulation), skipping taps outside the input.
 * This call computes the (image, channel) planes [lo, hi); planes are
 * independent, so the pool's split does not change any sum.
 */
static void conv_depthwise(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct dw_job *j = ctx;
	const struct geom *g = j->g;
	const int64_t C = j->C, M = j->M;
	const int64_t mult = M / C, Pin = prod3(g->in), P = prod3(g->out), K = prod3(g->k);
	enum { MAX_ROWS = 64 };
	const float *src[MAX_ROWS], *wt[MAX_ROWS];
	(void)t;
	for (int64_t nm = lo; nm < hi; nm++) {
		const int64_t n = nm / M, m = nm % M;
		const float *xc = j->x + (n * C + m / mult) * Pin, *wm = j->w + m * K;
		float *yc = j->y + (n * M + m) * P;
		for (int64_t od = 0; od < g->out[0]; od++)
			for (int64_t oh = 0; oh < g->out[1]; oh++) {
				float *dst = yc + (od * g->out[1] + oh) * g->out[2];
				int nr = 0;
				for (int64_t kd = 0; kd < g->k[0]; kd++) {
					int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
					if (id < 0 || id >= g->in[0])
						continue;
					for (int64_t kh = 0; kh < g->k[1]; kh++) {
						int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
						if (ih < 0 || ih >= g->in[1])
							continue;
						if (nr == MAX_ROWS) { /* a tall kernel: flush what is gathered */
							dw_line(dst, src, wt, nr, g);
							nr = 0;
						}
						src[nr] = xc + (id * g->in[1] + ih) * g->in[2];
						wt[nr++] = wm + (kd * g->k[1] + kh) * g->k[2];
					}
				}
				dw_line(dst, src, wt, nr, g);
			}
	}
}

/* Kernel dims taken from W: at least 1 (an empty kernel has no output), at most ATTR_MAX. */
static enum qt_status check_kernel(const struct qt_op_args *a, const struct geom *g)
{
	for (int i = 0; i < g->nsp; i++) {
		int64_t k = g->k[slot(g, i)];
		if (k < 1 || k > ATTR_MAX)
			return qt_op_error(a, k < 1 ? QT_E_FORMAT : QT_E_UNSUPPORTED,
					   "weight spatial dim %d is %lld; it must lie in [1, %lld]", i, (long long)k,
					   (long long)ATTR_MAX);
	}
	return QT_OK;
}

static int blas_fits(int64_t m, int64_t n, int64_t k)
{
	return m <= INT_MAX && n <= INT_MAX && k <= INT_MAX;
}

/* Lines per im2col/col2im chunk so that rows * lines * line_len stays within budget floats. */
static int64_t chunk_lines(int64_t rows, int64_t line_len, int64_t lines, int64_t budget)
{
	int64_t per = rows * line_len; /* both come from allocated tensors: no overflow */
	int64_t n = per > 0 ? budget / per : lines;
	if (n < 1)
		n = 1;
	return n < lines ? n : lines;
}

struct gemm_job {
	const float *x, *w;
	float *y;
	const struct geom *g;
	int64_t C, M, cg, mg, rows, Pin, P, per, nchunks, mstep, mchunks, group;
	int pointwise;
	float beta;
	float *col;   /* per pool thread: rows * per * out[2] floats */
	int64_t ncol; /* floats per thread */
};

/*
 * Items [lo, hi) of a conv as GEMMs: item = ((image * group + g) * chunks +
 * chunk) * mchunks + m-chunk. Each computes Y_g[m-chunk rows, the chunk's
 * lines] = W_g[m-chunk rows] * col with a single-threaded sgemm; col is the
 * chunk's im2col in this thread's buffer (reused while the next item needs
 * the same one), or X itself for a pointwise conv.
 */
static void conv_gemm_part(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct gemm_job *j = ctx;
	const struct geom *g = j->g;
	const int64_t W = g->out[2], lines = g->out[0] * g->out[1];
	float *col = j->col + t * j->ncol;
	int64_t have = -1; /* the (image, group, chunk) in col */
	for (int64_t it = lo; it < hi; it++) {
		const int64_t mc = it % j->mchunks, ngc = it / j->mchunks, chunk = ngc % j->nchunks;
		const int64_t ng = ngc / j->nchunks, n = ng / j->group, gi = ng % j->group;
		const int64_t l0 = chunk * j->per, l1 = l0 + j->per < lines ? l0 + j->per : lines;
		const int64_t np = (l1 - l0) * W, m0 = mc * j->mstep;
		const int64_t mrows = m0 + j->mstep < j->mg ? j->mstep : j->mg - m0;
		const float *xg = j->x + (n * j->C + gi * j->cg) * j->Pin;
		const float *b = xg + l0 * W;
		int64_t ldb = j->P;
		if (!j->pointwise) {
			if (have != ngc)
				im2col(xg, 0, j->cg, g, l0, l1, col);
			have = ngc;
			b = col;
			ldb = np;
		}
		float *yg = j->y + (n * j->M + gi * j->mg + m0) * j->P + l0 * W;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mrows, (int)np, (int)j->rows, 1.0f,
			    j->w + (gi * j->mg + m0) * j->rows, (int)j->rows, b, (int)ldb, j->beta, yg, (int)j->P);
	}
}

/*
 * The GEMM part of a conv (not depthwise), split into items on the runtime's
 * pool, each a single-threaded sgemm: OpenBLAS's own threads, spinning while
 * the pool ran im2col, fought the pool for the cores and left the batch loop
 * serial. Chunks of output lines keep each col buffer within COL_CHUNK
 * floats; when a layer has fewer than CONV_MIN_ITEMS chunks in all (batch 1,
 * small images) the output channels are split too. The split depends only
 * on the shapes, never on the thread count, so every output element comes
 * from the same sgemm call whatever QT_THREADS is.
 */
static enum qt_status conv_gemm(const struct qt_op_args *a, const float *x, const float *w, float *y,
				const struct geom *g, int64_t N, int64_t C, int64_t M, int64_t group, int pointwise,
				int has_bias)
{
	const int64_t cg = C / group, mg = M / group, K = prod3(g->k), rows = cg * K;
	const int64_t lines = g->out[0] * g->out[1], W = g->out[2];
	struct gemm_job j = {x, w, y, g, C, M, cg, mg, rows, prod3(g->in), prod3(g->out), 0, 0, mg, 1, group,
			     pointwise, has_bias ? 1.0f : 0.0f, NULL, 0};
	j.per = chunk_lines(rows, W, lines, COL_CHUNK);
	j.nchunks = (lines + j.per - 1) / j.per;
	int64_t items = N * group * j.nchunks;
	if (items < CONV_MIN_ITEMS && mg >= 2 * CONV_MIN_MROWS) {
		/* Whole multiples of CONV_MIN_MROWS rows: the sgemm kernels' tiles. */
		int64_t want = (CONV_MIN_ITEMS + items - 1) / items, step = (mg + want - 1) / want;
		j.mstep = (step + CONV_MIN_MROWS - 1) / CONV_MIN_MROWS * CONV_MIN_MROWS;
		j.mchunks = (mg + j.mstep - 1) / j.mstep;
	}
	items *= j.mchunks;
	const int nt = qt_pool_threads();
	if (!pointwise) {
		j.ncol = rows * j.per * W;
		j.col = malloc((size_t)(j.ncol * nt) * sizeof *j.col);
		if (!j.col)
			return qt_op_error(a, QT_E_NOMEM, "out of memory for the im2col buffers (%d x %lld floats)",
					   nt, (long long)j.ncol);
	}
	int saved = qt_blas_single_begin();
	qt_pool_for(items, nt, conv_gemm_part, &j);
	qt_blas_single_end(saved);
	free(j.col);
	return QT_OK;
}

/*
 * Conv: Y[n, m] = B[m] + sum over the group's input channels and kernel taps
 * of W[m, c, k] * X[n, c, pos(k)]. W is (M, C/group, k...). 1x1 stride-1
 * unpadded convs multiply X directly, depthwise convs use a direct loop, the
 * rest im2col + sgemm, in items of (image, group, output lines, channels) run
 * on the pool (conv_gemm).
 */
static enum qt_status op_conv(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0), *w = qt_op_in(a, 1), *b = qt_op_in(a, 2);
	struct geom g;
	enum auto_pad ap;
	enum qt_status st;
	char s1[96], s2[96];
	if ((st = need_f32(a, x, "X")) || (st = need_f32(a, w, "W")) || (b && (st = need_f32(a, b, "B"))))
		return st;
	if ((st = geom_init(a, x, &g)))
		return st;
	if (w->rank != x->rank)
		return qt_op_error(a, QT_E_FORMAT, "weight W %s has rank %d but X %s has rank %d",
				   qt_shape_str(s1, sizeof s1, w->rank, w->dims), w->rank,
				   qt_shape_str(s2, sizeof s2, x->rank, x->dims), x->rank);
	int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0];
	int64_t group = qt_node_attr_int(a->node, "group", 1);
	if (group < 1)
		return qt_op_error(a, QT_E_FORMAT, "group %lld must be >= 1", (long long)group);
	if (C % group)
		return qt_op_error(a, QT_E_FORMAT, "input has %lld channels, not a multiple of group %lld",
				   (long long)C, (long long)group);
	if (w->dims[1] != C / group)
		return qt_op_error(
			a, QT_E_FORMAT,
			"weight has %lld input channels per group but input has %lld (%lld channels / group %lld)",
			(long long)w->dims[1], (long long)(C / group), (long long)C, (long long)group);
	if (M % group)
		return qt_op_error(a, QT_E_FORMAT, "weight has %lld output channels, not a multiple of group %lld",
				   (long long)M, (long long)group);
	if (b && (b->rank != 1 || b->dims[0] != M))
		return qt_op_error(a, QT_E_FORMAT, "bias B has shape %s but the weight has %lld output channels",
				   qt_shape_str(s1, sizeof s1, b->rank, b->dims), (long long)M);
	for (int i = 0; i < g.nsp; i++)
		g.k[slot(&g, i)] = w->dims[2 + i];
	int64_t ks[SP];
	memcpy(ks, g.k, sizeof ks);
	if ((st = spatial_attr(a, &g, "kernel_shape", 1, ks)))
		return st;
	if (memcmp(ks, g.k, sizeof ks) != 0)
		return qt_op_error(a, QT_E_FORMAT, "kernel_shape %s does not match the weight's spatial shape %s",
				   qt_shape_str(s1, sizeof s1, g.nsp, ks + SP - g.nsp),
				   qt_shape_str(s2, sizeof s2, g.nsp, w->dims + 2));
	if ((st = check_kernel(a, &g)))
		return st;
	if ((st = spatial_attr(a, &g, "strides", 1, g.s)) || (st = spatial_attr(a, &g, "dilations", 1, g.d)) ||
	    (st = pads_attr(a, &g)) || (st = read_auto_pad(a, &ap)) || (st = fwd_geometry(a, &g, ap, 0)))
		return st;
	char lbl[256];
	if ((st = qt_rt_work_check((double)N * (double)M * (double)prod3(g.out) * (double)(C / group) *
					   (double)prod3(g.k),
				   qt_node_label(a->g, a->node, lbl, sizeof lbl))))
		return st;
	if ((st = alloc_out(a, 0, QT_DTYPE_F32, &g, N, M)))
		return st;
	float *y = a->out[0].data;
	const float *xp = x->data, *wp = w->data;
	const int64_t P = prod3(g.out), K = prod3(g.k), cg = C / group, mg = M / group;
	if (b)
		fill_bias(y, b->data, N, M, P);
	if (N == 0 || M == 0 || P == 0 || cg == 0 || K == 0)
		return QT_OK;
	if (cg == 1 && group > 1) {
		struct dw_job dj = {xp, wp, y, &g, C, M};
		qt_pool_for(N * M, qt_pool_threads(), conv_depthwise, &dj);
		return QT_OK;
	}
	if (!blas_fits(mg, P, cg * K))
		return qt_op_error(a, QT_E_UNSUPPORTED, "convolution too large for 32-bit BLAS sizes");
	int pointwise = K == 1;
	for (int i = 0; i < SP; i++)
		pointwise = pointwise && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
	return conv_gemm(a, xp, wp, y, &g, N, C, M, group, pointwise, b != NULL);
}

/*
 * Scatter-add col ((mg * K) x ((l1 - l0) * in[2]), one row per output
 * channel and tap, one column per input pixel of input lines [l0, l1)) into
 * the mg output planes of y: input pixel i and tap t land on
 * i * stride + t * dilation - pad_begin; what falls outside is cropped.
 */
static void col2im(const float *col, int64_t mg, const struct geom *g, int64_t l0, int64_t l1, float *y)
{
	const int64_t W = g->in[2], np = (l1 - l0) * W, s2 = g->s[2], P = prod3(g->out);
	const float *row = col;
	for (int64_t m = 0; m < mg; m++)
		for (int64_t kd = 0; kd < g->k[0]; kd++)
			for (int64_t kh = 0; kh < g->k[1]; kh++)
				for (int64_t kw = 0; kw < g->k[2]; kw++, row += np) {
					int64_t off = kw * g->d[2] - g->pb[2], lo, hi;
					valid_range(off, s2, g->out[2], W, &lo, &hi);
					for (int64_t l = l0; l < l1; l++) {
						int64_t od = (l / g->in[1]) * g->s[0] + kd * g->d[0] - g->pb[0];
						int64_t oh = (l % g->in[1]) * g->s[1] + kh * g->d[1] - g->pb[1];
						if (od < 0 || od >= g->out[0] || oh < 0 || oh >= g->out[1])
							continue;
						float *dst = y + m * P + (od * g->out[1] + oh) * g->out[2];
						const float *src = row + (l - l0) * W;
						for (int64_t iw = lo; iw < hi; iw++)
							dst[iw * s2 + off] += src[iw];
					}
				}
}

/*
 * ConvTranspose: the adjoint of Conv. W is (C, M/group, k...); each input
 * pixel scatters W[c, m, :] * X[n, c, pixel] into the output. Computed as
 * col = W_g^T * X_g (sgemm) then col2im, per image and group, in chunks of
 * input lines. Output size: output_shape if given (pads derived from it),
 * else stride * (in - 1) + output_padding + extent - pads (SAME_*: in *
 * stride). A negative derived total padding is clamped to 0: the extra
 * output at the end then holds only the bias.
 */
static enum qt_status convt_geometry(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *w,
				     const struct qt_tensor *b, struct geom *gout, int64_t *M_out, int64_t *group_out)
{
	struct geom g;
	enum auto_pad ap;
	enum qt_status st;
	char s1[96], s2[96];
	if ((st = geom_init(a, x, &g)))
		return st;
	if (w->rank != x->rank)
		return qt_op_error(a, QT_E_FORMAT, "weight W %s has rank %d but X %s has rank %d",
				   qt_shape_str(s1, sizeof s1, w->rank, w->dims), w->rank,
				   qt_shape_str(s2, sizeof s2, x->rank, x->dims), x->rank);
	int64_t N = x->dims[0], C = x->dims[1], mg = w->dims[1], M;
	int64_t group = qt_node_attr_int(a->node, "group", 1);
	if (group < 1)
		return qt_op_error(a, QT_E_FORMAT, "group %lld must be >= 1", (long long)group);
	if (C % group)
		return qt_op_error(a, QT_E_FORMAT, "input has %lld channels, not a multiple of group %lld",
				   (long long)C, (long long)group);
	if (w->dims[0] != C)
		return qt_op_error(a, QT_E_FORMAT, "weight has %lld input channels but X has %lld",
				   (long long)w->dims[0], (long long)C);
	if (!mul_ok(mg, group, &M))
		return qt_op_error(a, QT_E_FORMAT, "output channel count %lld x group %lld overflows", (long long)mg,
				   (long long)group);
	if (b && (b->rank != 1 || b->dims[0] != M))
		return qt_op_error(a, QT_E_FORMAT, "bias B has shape %s but the output has %lld channels",
				   qt_shape_str(s1, sizeof s1, b->rank, b->dims), (long long)M);
	for (int i = 0; i < g.nsp; i++)
		g.k[slot(&g, i)] = w->dims[2 + i];
	int64_t ks[SP], op[SP] = {0, 0, 0};
	memcpy(ks, g.k, sizeof ks);
	if ((st = spatial_attr(a, &g, "kernel_shape", 1, ks)))
		return st;
	if (memcmp(ks, g.k, sizeof ks) != 0)
		return qt_op_error(a, QT_E_FORMAT, "kernel_shape %s does not match the weight's spatial shape %s",
				   qt_shape_str(s1, sizeof s1, g.nsp, ks + SP - g.nsp),
				   qt_shape_str(s2, sizeof s2, g.nsp, w->dims + 2));
	if ((st = check_kernel(a, &g)))
		return st;
	if ((st = spatial_attr(a, &g, "strides", 1, g.s)) || (st = spatial_attr(a, &g, "dilations", 1, g.d)) ||
	    (st = spatial_attr(a, &g, "output_padding", 0, op)) || (st = pads_attr(a, &g)) ||
	    (st = read_auto_pad(a, &ap)))
		return st;
	/* output_shape may list the spatial dims only, or N and C too. */
	const int64_t *os;
	int nos = qt_node_attr_ints(a->node, "output_shape", &os);
	if (nos == g.nsp + 2)
		os += 2, nos -= 2;
	if (nos != 0 && nos != g.nsp)
		return qt_op_error(a, QT_E_FORMAT,
				   "attribute output_shape has %d values but the input has %d spatial dims", nos,
				   g.nsp);
	for (int j = 0; j < g.nsp; j++) {
		int i = slot(&g, j);
		int64_t ek = (g.k[i] - 1) * g.d[i] + 1, full, out;
		/* full = stride * (in - 1) + extent + output_padding: the uncropped size. */
		if (!mul_ok(g.s[i], g.in[i] > 0 ? g.in[i] - 1 : 0, &full) || full > INT64_MAX / 4)
			return qt_op_error(a, QT_E_FORMAT, "spatial dim %d: output size overflows", j);
		full += ek + op[i];
		if (nos || ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
			if (nos) {
				out = os[j];
				if (out < 0 || out > full + 2 * ATTR_MAX)
					return qt_op_error(a, QT_E_FORMAT, "output_shape[%d] = %lld is out of range", j,
							   (long long)out);
			} else if (!mul_ok(g.in[i], g.s[i], &out)) {
				return qt_op_error(a, QT_E_FORMAT, "spatial dim %d: output size overflows", j);
			}
			int64_t total = full - out;
			if (total < 0)
				total = 0;
			g.pb[i] = ap == PAD_SAME_UPPER ? total / 2 : total - total / 2;
			g.pe[i] = total - g.pb[i];
		} else {
			if (ap == PAD_VALID)
				g.pb[i] = g.pe[i] = 0;
			out = full - g.pb[i] - g.pe[i];
			if (out < 1)
				return qt_op_error(a, QT_E_FORMAT,
						   "spatial dim %d: pads %lld + %lld leave no output (size %lld)", j,
						   (long long)g.pb[i], (long long)g.pe[i], (long long)full);
		}
		g.out[i] = out;
	}
	(void)N;
	*gout = g;
	*M_out = M;
	*group_out = group;
	return QT_OK;
}

/* The output geometry of a 2-D ConvTranspose for the integer runtime, with
 * exactly the FP32 op's validation (codes have the float tensors' shapes). */
enum qt_status qt_convt_geometry_2d(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *w,
				    struct qt_convt_geom *o)
{
	struct geom g;
	int64_t M, group;
	enum qt_status st = convt_geometry(a, x, w, NULL, &g, &M, &group);
	if (st)
		return st;
	if (g.nsp != 2)
		return qt_op_error(a, QT_E_UNSUPPORTED, "the integer ConvTranspose is 2-D only");
	*o = (struct qt_convt_geom){.N = x->dims[0], .C = x->dims[1], .M = M, .group = group, .H = g.in[1],
				    .W = g.in[2], .OH = g.out[1], .OW = g.out[2], .KH = g.k[1], .KW = g.k[2],
				    .sh = g.s[1], .sw = g.s[2], .dh = g.d[1], .dw = g.d[2], .pt = g.pb[1], .pl = g.pb[2]};
	return QT_OK;
}

static enum qt_status op_conv_transpose(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0), *w = qt_op_in(a, 1), *b = qt_op_in(a, 2);
	struct geom g;
	int64_t M, group;
	enum qt_status st;
	if ((st = need_f32(a, x, "X")) || (st = need_f32(a, w, "W")) || (b && (st = need_f32(a, b, "B"))) ||
	    (st = convt_geometry(a, x, w, b, &g, &M, &group)))
		return st;
	int64_t N = x->dims[0], C = x->dims[1], mg = w->dims[1];
	if ((st = alloc_out(a, 0, QT_DTYPE_F32, &g, N, M)))
		return st;
	float *y = a->out[0].data;
	const float *xp = x->data, *wp = w->data;
	const int64_t Pin = prod3(g.in), P = prod3(g.out), K = prod3(g.k), cg = C / group;
	if (b)
		fill_bias(y, b->data, N, M, P);
	if (N == 0 || M == 0 || P == 0 || Pin == 0 || cg == 0 || K == 0)
		return QT_OK;
	const int64_t rows = mg * K, lines = g.in[0] * g.in[1], per = chunk_lines(rows, g.in[2], lines, COL_BUDGET);
	if (!blas_fits(rows, Pin, cg))
		return qt_op_error(a, QT_E_UNSUPPORTED, "transposed convolution too large for 32-bit BLAS sizes");
	float *col = malloc((size_t)(rows * per * g.in[2]) * sizeof *col);
	if (!col)
		return qt_op_error(a, QT_E_NOMEM, "out of memory for the col2im buffer (%lld floats)",
				   (long long)(rows * per * g.in[2]));
	for (int64_t n = 0; n < N; n++)
		for (int64_t gi = 0; gi < group; gi++) {
			const float *xg = xp + (n * C + gi * cg) * Pin, *wg = wp + gi * cg * rows;
			float *yg = y + (n * M + gi * mg) * P;
			for (int64_t l0 = 0; l0 < lines; l0 += per) {
				int64_t l1 = l0 + per < lines ? l0 + per : lines, np = (l1 - l0) * g.in[2];
				/* col (rows x np) = W_g^T (rows x cg) * X_g[:, lines l0..l1) (cg x np). */
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)np, (int)cg, 1.0f,
					    wg, (int)rows, xg + l0 * g.in[2], (int)Pin, 0.0f, col, (int)np);
				col2im(col, mg, &g, l0, l1, yg);
			}
		}
	free(col);
	return QT_OK;
}

/* Shared attribute parsing of MaxPool and AveragePool. */
static enum qt_status pool_setup(const struct qt_op_args *a, const struct qt_tensor *x, struct geom *g)
{
	enum auto_pad ap;
	enum qt_status st;
	if ((st = geom_init(a, x, g)))
		return st;
	const int64_t *kv;
	int nk = qt_node_attr_ints(a->node, "kernel_shape", &kv);
	if (nk == 0)
		return qt_op_error(a, QT_E_FORMAT, "attribute kernel_shape is required");
	if ((st = spatial_attr(a, g, "kernel_shape", 1, g->k)) || (st = spatial_attr(a, g, "strides", 1, g->s)) ||
	    (st = spatial_attr(a, g, "dilations", 1, g->d)) || (st = pads_attr(a, g)) || (st = read_auto_pad(a, &ap)))
		return st;
	int64_t ceil_mode = qt_node_attr_int(a->node, "ceil_mode", 0);
	if (ceil_mode != 0 && ceil_mode != 1)
		return qt_op_error(a, QT_E_FORMAT, "ceil_mode must be 0 or 1, not %lld", (long long)ceil_mode);
	if ((st = fwd_geometry(a, g, ap, (int)ceil_mode)))
		return st;
	char lbl[256];
	return qt_rt_work_check((double)x->dims[0] * (double)x->dims[1] * (double)prod3(g->out) * (double)prod3(g->k),
				qt_node_label(a->g, a->node, lbl, sizeof lbl));
}

/*
 * Max pooling over planes of x: each window keeps only the taps inside the
 * input (valid_range), so padding never wins; ties keep the first tap in scan
 * order; a window with no tap inside (degenerate pads) gives -inf. idx
 * (optional) receives the flat input index of the maximum: row-major over
 * the whole tensor, or with the spatial part column-major when col_major.
 * Computes planes [p0, p1).
 */
/*
 * One output line of a max pool without indices, over the n_rows input lines
 * in src: the same value as maxpool_f32's scan (the first valid tap, then a
 * tap only when greater, so NaN handling is unchanged), with the interior
 * pixels a vectorised pass per (row, kw) and the border ones tap by tap.
 */
static void maxpool_line(float *restrict dst, const float *const *src, int n_rows, const struct geom *g)
{
	const int64_t W = g->out[2], s2 = g->s[2], d2 = g->d[2], k2 = g->k[2], pb = g->pb[2];
	int64_t lo, hi;
	interior(g, &lo, &hi);
	if (n_rows == 0)
		lo = hi = 0; /* every pixel of the line has an empty window */
	for (int64_t ow = 0; ow < W; ow++) {
		if (ow == lo && hi > lo) {
			ow = hi - 1;
			continue;
		}
		float best = -INFINITY;
		int any = 0;
		for (int r = 0; r < n_rows; r++)
			for (int64_t kw = 0; kw < k2; kw++) {
				int64_t iw = ow * s2 - pb + kw * d2;
				if (iw >= 0 && iw < g->in[2] && (!any || src[r][iw] > best)) {
					best = src[r][iw];
					any = 1;
				}
			}
		dst[ow] = best;
	}
	for (int r = 0; r < n_rows; r++)
		for (int64_t kw = 0; kw < k2; kw++) {
			const float *x = src[r] - pb + kw * d2;
			if (r == 0 && kw == 0) {
				for (int64_t ow = lo; ow < hi; ow++)
					dst[ow] = x[ow * s2];
				continue;
			}
			for (int64_t ow = lo; ow < hi; ow++) {
				float v = x[ow * s2];
				dst[ow] = v > dst[ow] ? v : dst[ow];
			}
		}
}

/* maxpool_f32 without indices, for windows of at most POOL_MAX_ROWS lines: line by line. */
static void maxpool_f32_lines(const float *x, float *y, const struct geom *g, int64_t p0, int64_t p1)
{
	const int64_t Pin = prod3(g->in), P = prod3(g->out);
	const float *src[POOL_MAX_ROWS];
	for (int64_t pl = p0; pl < p1; pl++)
		for (int64_t od = 0; od < g->out[0]; od++)
			for (int64_t oh = 0; oh < g->out[1]; oh++) {
				int64_t sd = od * g->s[0] - g->pb[0], sh = oh * g->s[1] - g->pb[1], d0, d1, h0, h1;
				valid_range(sd, g->d[0], g->in[0], g->k[0], &d0, &d1);
				valid_range(sh, g->d[1], g->in[1], g->k[1], &h0, &h1);
				float *dst = y + pl * P + (od * g->out[1] + oh) * g->out[2];
				int nr = 0;
				for (int64_t kd = d0; kd < d1; kd++)
					for (int64_t kh = h0; kh < h1; kh++)
						src[nr++] = x + pl * Pin + ((sd + kd * g->d[0]) * g->in[1] + sh +
									    kh * g->d[1]) * g->in[2];
				maxpool_line(dst, src, nr, g);
			}
}

static void maxpool_f32(const float *x, float *y, int64_t *idx, const struct geom *g, int64_t p0, int64_t p1,
			int col_major)
{
	const int64_t Pin = prod3(g->in), P = prod3(g->out);
	for (int64_t pl = p0; pl < p1; pl++) {
		const float *xp = x + pl * Pin;
		int64_t o = pl * P;
		for (int64_t od = 0; od < g->out[0]; od++) {
			int64_t sd = od * g->s[0] - g->pb[0], d0, d1;
			valid_range(sd, g->d[0], g->in[0], g->k[0], &d0, &d1);
			for (int64_t oh = 0; oh < g->out[1]; oh++) {
				int64_t sh = oh * g->s[1] - g->pb[1], h0, h1;
				valid_range(sh, g->d[1], g->in[1], g->k[1], &h0, &h1);
				for (int64_t ow = 0; ow < g->out[2]; ow++, o++) {
					int64_t sw = ow * g->s[2] - g->pb[2], w0, w1, bd = -1, bh = 0, bw = 0;
					valid_range(sw, g->d[2], g->in[2], g->k[2], &w0, &w1);
					float best = -INFINITY;
					for (int64_t kd = d0; kd < d1; kd++)
						for (int64_t kh = h0; kh < h1; kh++) {
							int64_t id = sd + kd * g->d[0], ih = sh + kh * g->d[1];
							const float *r = xp + (id * g->in[1] + ih) * g->in[2];
							for (int64_t kw = w0; kw < w1; kw++) {
								int64_t iw = sw + kw * g->d[2];
								if (bd < 0 || r[iw] > best) {
									best = r[iw];
									bd = id, bh = ih, bw = iw;
								}
							}
						}
					y[o] = best;
					if (!idx)
						continue;
					if (bd < 0)
						idx[o] = -1;
					else if (col_major)
						idx[o] = pl * Pin + bd + (bh + bw * g->in[1]) * g->in[0];
					else
						idx[o] = pl * Pin + (bd * g->in[1] + bh) * g->in[2] + bw;
				}
			}
		}
	}
}

struct maxpool_job {
	const float *x;
	float *y;
	int64_t *idx;
	const struct geom *g;
	int col_major;
};

static void maxpool_part(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct maxpool_job *j = ctx;
	(void)t;
	if (!j->idx && j->g->k[0] * j->g->k[1] <= POOL_MAX_ROWS)
		maxpool_f32_lines(j->x, j->y, j->g, lo, hi);
	else
		maxpool_f32(j->x, j->y, j->idx, j->g, lo, hi, j->col_major);
}

/*
 * MaxPool: float32, and int8/uint8 (opset 12), which are pooled as float
 * (exact: every 8-bit value is a float) through a temporary copy. The
 * optional Indices output (opset 8+) is int64; storage_order 1 makes its
 * spatial part column-major.
 */
static enum qt_status op_maxpool(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	struct geom g;
	enum qt_status st;
	if (!x)
		return qt_op_error(a, QT_E_FORMAT, "required input X is missing");
	if (x->dtype != QT_DTYPE_F32 && x->dtype != QT_DTYPE_U8 && x->dtype != QT_DTYPE_I8)
		return qt_op_error(a, QT_E_UNSUPPORTED, "input X is %s; only float32, int8 and uint8 are supported",
				   qt_dtype_name(x->dtype));
	if ((st = pool_setup(a, x, &g)))
		return st;
	int64_t so = qt_node_attr_int(a->node, "storage_order", 0);
	if (so != 0 && so != 1)
		return qt_op_error(a, QT_E_FORMAT, "storage_order must be 0 or 1, not %lld", (long long)so);
	int want_idx = a->n_out > 1 && a->node->n_outputs > 1 && a->node->outputs[1] >= 0;
	if ((st = alloc_out(a, 0, x->dtype, &g, x->dims[0], x->dims[1])) ||
	    (want_idx && (st = alloc_out(a, 1, QT_DTYPE_I64, &g, x->dims[0], x->dims[1]))))
		return st;
	int64_t planes = x->dims[0] * x->dims[1], *idx = want_idx ? a->out[1].data : NULL;
	if (x->dtype == QT_DTYPE_F32) {
		struct maxpool_job mj = {x->data, a->out[0].data, idx, &g, (int)so};
		qt_pool_for(planes, qt_pool_threads(), maxpool_part, &mj);
		return QT_OK;
	}
	int64_t nx = qt_tensor_numel(x), ny = qt_tensor_numel(&a->out[0]);
	float *xf = malloc((size_t)(nx + ny + 1) * sizeof *xf), *yf = xf + nx;
	if (!xf)
		return qt_op_error(a, QT_E_NOMEM, "out of memory converting %s input to float",
				   qt_dtype_name(x->dtype));
	for (int64_t i = 0; i < nx; i++)
		xf[i] = (float)qt_tensor_get_f64(x, i);
	maxpool_f32(xf, yf, idx, &g, 0, planes, (int)so);
	double lo = x->dtype == QT_DTYPE_U8 ? 0 : INT8_MIN;
	for (int64_t i = 0; i < ny; i++)
		qt_tensor_set_f64(&a->out[0], i, yf[i] < lo ? lo : yf[i]); /* -inf: empty window */
	free(xf);
	return QT_OK;
}

/*
 * AveragePool: the mean of each window's taps inside the input. With
 * count_include_pad=1 the divisor also counts taps on the explicit or SAME
 * padding (but not a ceil_mode overhang beyond it). Sums in double.
 */
static enum qt_status op_avgpool(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	struct geom g;
	enum qt_status st;
	if ((st = need_f32(a, x, "X")) || (st = pool_setup(a, x, &g)))
		return st;
	int include_pad = qt_node_attr_int(a->node, "count_include_pad", 0) != 0;
	if ((st = alloc_out(a, 0, QT_DTYPE_F32, &g, x->dims[0], x->dims[1])))
		return st;
	const int64_t planes = x->dims[0] * x->dims[1], Pin = prod3(g.in);
	const float *xp0 = x->data;
	float *y = a->out[0].data;
	int64_t o = 0;
	for (int64_t pl = 0; pl < planes; pl++) {
		const float *xp = xp0 + pl * Pin;
		for (int64_t od = 0; od < g.out[0]; od++) {
			int64_t sd = od * g.s[0] - g.pb[0], d0, d1, pd0, pd1;
			valid_range(sd, g.d[0], g.in[0], g.k[0], &d0, &d1);
			valid_range(sd + g.pb[0], g.d[0], g.in[0] + g.pb[0] + g.pe[0], g.k[0], &pd0, &pd1);
			for (int64_t oh = 0; oh < g.out[1]; oh++) {
				int64_t sh = oh * g.s[1] - g.pb[1], h0, h1, ph0, ph1;
				valid_range(sh, g.d[1], g.in[1], g.k[1], &h0, &h1);
				valid_range(sh + g.pb[1], g.d[1], g.in[1] + g.pb[1] + g.pe[1], g.k[1], &ph0, &ph1);
				for (int64_t ow = 0; ow < g.out[2]; ow++, o++) {
					int64_t sw = ow * g.s[2] - g.pb[2], w0, w1, pw0, pw1;
					valid_range(sw, g.d[2], g.in[2], g.k[2], &w0, &w1);
					valid_range(sw + g.pb[2], g.d[2], g.in[2] + g.pb[2] + g.pe[2], g.k[2], &pw0,
						    &pw1);
					double sum = 0;
					for (int64_t kd = d0; kd < d1; kd++)
						for (int64_t kh = h0; kh < h1; kh++) {
							const float *r =
								xp + ((sd + kd * g.d[0]) * g.in[1] + sh + kh * g.d[1]) *
									     g.in[2];
							for (int64_t kw = w0; kw < w1; kw++)
								sum += r[sw + kw * g.d[2]];
						}
					int64_t cnt = include_pad ? (pd1 - pd0) * (ph1 - ph0) * (pw1 - pw0)
								  : (d1 - d0) * (h1 - h0) * (w1 - w0);
					y[o] = cnt ? (float)(sum / (double)cnt) : 0.0f;
				}
			}
		}
	}
	return QT_OK;
}

/* GlobalAveragePool / GlobalMaxPool: reduce every (n, c) plane to one value. */
static enum qt_status global_pool(const struct qt_op_args *a, int is_max)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	enum qt_status st;
	if ((st = need_f32(a, x, "X")))
		return st;
	if (x->rank < 3) {
		char s[96];
		return qt_op_error(a, QT_E_FORMAT, "input X %s must be N x C x D1 ...",
				   qt_shape_str(s, sizeof s, x->rank, x->dims));
	}
	int64_t dims[QT_MAX_RANK], S = 1;
	for (int i = 0; i < x->rank; i++) {
		dims[i] = i < 2 ? x->dims[i] : 1;
		if (i >= 2)
			S *= x->dims[i];
	}
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, x->rank, dims)))
		return qt_op_error(a, st, "output Y: %s", qt_error_msg());
	const float *xp = x->data;
	float *y = a->out[0].data;
	for (int64_t p = 0; p < x->dims[0] * x->dims[1]; p++) {
		const float *r = xp + p * S;
		if (is_max) {
			float m = S ? r[0] : -INFINITY;
			for (int64_t i = 1; i < S; i++)
				if (r[i] > m)
					m = r[i];
			y[p] = m;
		} else {
			double sum = 0; /* double: planes can be large */
			for (int64_t i = 0; i < S; i++)
				sum += r[i];
			y[p] = S ? (float)(sum / (double)S) : 0.0f;
		}
	}
	return QT_OK;
}

static enum qt_status op_global_avgpool(const struct qt_op_args *a)
{
	return global_pool(a, 0);
}

static enum qt_status op_global_maxpool(const struct qt_op_args *a)
{
	return global_pool(a, 1);
}

/* Registered in ops.c; min_opset 1: every version's attributes are read (see each op). */
const struct qt_op_entry qt_ops_conv[] = {
	{"Conv", 1, op_conv},
	{"ConvTranspose", 1, op_conv_transpose},
	{"MaxPool", 1, op_maxpool},
	{"AveragePool", 1, op_avgpool},
	{"GlobalAveragePool", 1, op_global_avgpool},
	{"GlobalMaxPool", 1, op_global_maxpool},
	{NULL, 0, NULL},
};
