/*
 * Integer kernels of the integer runtime: u8 x s8 GEMM, requantization,
 * grouped-weight GEMM, quantized Add/Mul, and sub-byte pack/unpack.
 *
 * lib/kernels/ref/ is the specification (plain loops); lib/kernels/x86/ holds
 * optimized kernels that must match the reference bit for bit. Every optimized
 * kernel is listed once in kernels.def; the dispatcher (dispatch.c), the tests
 * and the benchmark include that manifest as an X-macro.
 *
 * CONTRACT
 * --------
 * Quantization follows gemmlowp: real = scale * (q - zero_point).
 *
 * Activations: uint8, asymmetric, zero point za in [0, 255]. 4-bit activations
 *   are uint8 codes in [0, 15] (same kernels, with qmax = 15).
 * Weights: int8, symmetric (zero point 0). int4 / int3 / int2 weights are
 *   unpacked to int8 in [-8, 7] / [-4, 3] / [-2, 1] at load time
 *   (qt_unpack_s4 / qt_unpack_s3 / qt_unpack_s2). Codes may use the full
 *   two's-complement range of their width (int8 -128 included): the bounds
 *   below already allow |b| <= 128.
 *
 * qgemm: C[m][n] = sum_k A[m][k] * B[n][k], as int32.
 *   A: uint8 [M, K], row stride lda (elements). B: int8 [N, K] row-major
 *   (weights as out_channels x K). Optimized kernels read B in their own packed
 *   layout made once at model load by the kernel's pack function, which also
 *   returns colsum[n] = sum_k B[n][k] (int32). Zero-point correction is the
 *   caller's: acc = C - za * colsum[n] = sum_k (A[m][k] - za) * B[n][k].
 *   Accumulator bound: |(a - za) * b| <= 255 * 128 = 32640 per product, and
 *   |a * b| <= 32640 too, so K <= 65535 keeps C and acc exact in int32
 *   (65535 * 32640 = 2139062400 < 2^31). K <= 65535 is asserted here and
 *   validated by the runtime when a model is loaded.
 *
 * Requantization (THE ROUNDING RULE, the only one; docs/FORMAT.md copies it):
 *   acc  = sat32((int64)C - (int64)za * colsum[n] + bias[n])
 *            (the sum in int64, then saturated to [INT32_MIN, INT32_MAX];
 *             bias is int32 in units of s_a * s_w[n], NULL means 0)
 *   y    = floor(((int64)acc * m + 2^(n-1)) / 2^n)
 *            i.e. y = ((int64)acc * m + ((int64)1 << (n-1))) >> n with an
 *            arithmetic shift: round to nearest, ties toward +infinity.
 *            |acc * m| < 2^62 and 2^(n-1) <= 2^61, so int64 is exact.
 *   out  = clamp(y + zo, qmin, qmax), stored as uint8.
 *   m is int32 in [2^30, 2^31 - 1], or 0 when the real multiplier is 0;
 *   n is in [1, 62]; real_multiplier = m * 2^-n
 *   (= s_a * s_w[n] / s_out, computed by qt_quantize_multiplier, the only
 *   place where floating point appears, at model-preparation time).
 *   0 <= qmin <= qmax <= 255, zo in [0, 255].
 *   m and n are per output channel (arrays of cols) or per tensor (length 1).
 *
 * Grouped weights (group size G along K, scales s[n][g]): the caller picks a
 *   unit u[n] and integer ratios r[n][g] = round(s[n][g] / u[n]) in
 *   [0, 2^15]. Per group, acc_g = sum_{k in g} (A - za) * B (int32, exact);
 *   then acc64 = sum_g acc_g * r[n][g] + bias64[n] in int64
 *   (|sum| <= 32640 * 65535 * 2^15 < 2^47; |bias64| <= 2^62 is required),
 *   and y = floor((acc64 * m + 2^(n-1)) / 2^n) computed exactly (a 96-bit
 *   product; see qt_rq_mulshift64), out = clamp(y + zo, qmin, qmax). With an
 *   int32 acc this is the same rule as above.
 *
 * Threads: kernels keep no state; split work by rows (A + m0 * lda,
 * Y + m0 * ldy) to run them in parallel on one packed B.
 */
#ifndef QT_KERNELS_KERNELS_H
#define QT_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "qtool/qtool.h"

/* Largest K the u8 x s8 GEMM accepts (keeps int32 accumulation exact). */
#define QT_QGEMM_MAX_K 65535
/* Largest per-group ratio r[n][g] of the grouped GEMM. */
#define QT_GROUP_MAX_RATIO (1 << 15)

/* ---------------------------------------------------------------------- */
/* The rounding rule, written once. Optimized kernels must agree with it.  */

/* floor(x / 2^s) for 0 <= s <= 63, without the implementation-defined
 * right shift of a negative value (compiles to one arithmetic shift). */
static inline int64_t qt_sra64(int64_t x, int s)
{
	return x >= 0 ? x >> s : ~(~x >> s);
}

/* Saturate an int64 to int32. */
static inline int32_t qt_sat32(int64_t v)
{
	return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* y = floor((acc * m + 2^(n-1)) / 2^n); m in {0} U [2^30, 2^31-1], n in
 * [1, 62]. Exact in int64: |acc * m| < 2^62, plus at most 2^61. */
static inline int64_t qt_rq_mulshift(int32_t acc, int32_t m, int n)
{
	return qt_sra64((int64_t)acc * m + ((int64_t)1 << (n - 1)), n);
}

/* clamp(y + zo, qmin, qmax) as an activation code. y may be any int64 the
 * rule produces (|y| < 2^62), so y + zo cannot overflow. */
static inline uint8_t qt_rq_clamp(int64_t y, int32_t zo, int32_t qmin, int32_t qmax)
{
	int64_t v = y + zo;
	return (uint8_t)(v < qmin ? qmin : v > qmax ? qmax : v);
}

/*
 * The same rule for an int64 acc (grouped weights): floor((acc * m +
 * 2^(n-1)) / 2^n) computed exactly with a 128-bit intermediate built from
 * 64-bit halves (portable C), then saturated to [INT32_MIN, INT32_MAX] —
 * which never changes clamp(y + zo, qmin, qmax) since those lie in [0, 255].
 * Any int64 acc is accepted.
 */
int32_t qt_rq_mulshift64(int64_t acc, int32_t m, int n);

/*
 * Requantization parameters of one output tensor. Borrowed by the kernels.
 * mult/shift have `cols` entries when per_channel, else 1.
 */
struct qt_rq {
	const int32_t *mult;  /* each 0 or in [2^30, 2^31 - 1] */
	const int32_t *shift; /* each in [1, 62] */
	int per_channel;      /* 0: mult[0]/shift[0] for every column */
	int32_t zo;           /* output zero point, [0, 255] */
	int32_t qmin, qmax;   /* output clamp, 0 <= qmin <= qmax <= 255 */
};

/* 1 if rq satisfies the ranges above for `cols` output columns, else 0.
 * Kernels assert it; the runtime checks it when a model is loaded. */
int qt_rq_valid(const struct qt_rq *rq, int cols);

/*
 * Real multiplier -> (m, n) with real ~= m * 2^-n, m in [2^30, 2^31 - 1],
 * n in [1, 62] (so real must lie in about [2^-32, 2^30)). frexp, then m =
 * round(f * 2^31) half away from zero; m == 2^31 is renormalised to 2^30 with
 * n - 1. Double is allowed here only: this runs at model preparation.
 * Returns QT_E_NUMERIC (message set) if real is not finite, <= 0, or n would
 * leave [1, 62]; *m_out and *n_out are untouched then.
 */
enum qt_status qt_quantize_multiplier(double real, int32_t *m_out, int *n_out);

/* ---------------------------------------------------------------------- */
/* u8 x s8 GEMM                                                            */

/* C[m][n] = sum_k A[m][k] * B[n][k] (int32 [M, N], row stride ldc). B is in
 * the kernel's packed layout. M, N >= 0, 0 <= K <= QT_QGEMM_MAX_K. */
typedef void (*qt_qgemm_fn)(int M, int N, int K, const uint8_t *A, size_t lda,
			    const void *packed_B, int32_t *C, size_t ldc);

/* Y[m][n] = requant(C[m][n] - za * colsum[n] + bias[n]) per the rule above;
 * Y is uint8 [M, N] with row stride ldy. colsum (from pack) and bias may be
 * NULL (no correction / no bias). */
typedef void (*qt_qgemm_requant_fn)(int M, int N, int K, const uint8_t *A, size_t lda,
				    const void *packed_B, int32_t za, const int32_t *colsum,
				    const int32_t *bias, const struct qt_rq *rq, uint8_t *Y,
				    size_t ldy);

/* Pack B (int8 [N, K], row stride ldb) into `packed` (packed_size bytes,
 * caller-owned, any alignment; 64 bytes is best) and write colsum_out[N]. */
typedef void (*qt_qgemm_pack_fn)(int N, int K, const int8_t *B, size_t ldb, void *packed,
				 int32_t *colsum_out);

/* Bytes of the packed form of an [N, K] B. */
typedef size_t (*qt_qgemm_packed_size_fn)(int N, int K);

/*
 * Grouped-weight GEMM with requantization (see CONTRACT) on the same packed
 * B as the kernel's plain GEMM. G >= 1 is any group size (the last group may
 * be shorter); ngroups = ceil(K / G). colsum_g and ratio are int32
 * [N, ngroups], channel-major (entry n * ngroups + g); colsum_g comes from
 * qt_colsum_groups_s8__ref, ratio in [0, 2^15]. bias64: [N] or NULL, each
 * |bias64| <= 2^62, in units of s_a * u[n]. Y: uint8 [M, N], row stride ldy.
 */
typedef void (*qt_qgemm_group_packed_fn)(int M, int N, int K, int G, const uint8_t *A,
					 size_t lda, int32_t za, const void *packed_B,
					 const int32_t *colsum_g, const int32_t *ratio,
					 const int64_t *bias64, const struct qt_rq *rq, uint8_t *Y,
					 size_t ldy);

/* One GEMM kernel: its packed layout and the functions that use it. */
struct qt_qgemm_kernel {
	const char *name;     /* "u8s8_8x32c4__avx512vnni" */
	int isa;              /* enum qt_isa */
	int mr, nr, kr;       /* tile rows, tile columns, K interleave of the packing */
	qt_qgemm_packed_size_fn packed_size;
	qt_qgemm_pack_fn pack;
	qt_qgemm_fn gemm;
	qt_qgemm_requant_fn gemm_requant;
	qt_qgemm_group_packed_fn gemm_group_requant; /* NULL: this kernel has none */
};

/* Bytes needed by k's packed form of an [N, K] weight matrix. */
size_t qt_qgemm_packed_size(const struct qt_qgemm_kernel *k, int N, int K);

/* Pack B for kernel k (see qt_qgemm_pack_fn); done once at model load, the
 * packed bytes are persistent weights. B is borrowed. */
void qt_qgemm_pack(const struct qt_qgemm_kernel *k, int N, int K, const int8_t *B, size_t ldb,
		   void *packed, int32_t *colsum_out);

/* The reference GEMM: its "packed" layout is B itself, int8 [N, K] with row
 * stride K. */
extern const struct qt_qgemm_kernel qt_qgemm_u8s8_ref;

size_t qt_qgemm_packed_size_u8s8__ref(int N, int K);
void qt_qgemm_pack_u8s8__ref(int N, int K, const int8_t *B, size_t ldb, void *packed,
			     int32_t *colsum_out);
void qt_qgemm_u8s8__ref(int M, int N, int K, const uint8_t *A, size_t lda, const void *packed_B,
			int32_t *C, size_t ldc);
void qt_qgemm_requant_u8s8__ref(int M, int N, int K, const uint8_t *A, size_t lda,
				const void *packed_B, int32_t za, const int32_t *colsum,
				const int32_t *bias, const struct qt_rq *rq, uint8_t *Y, size_t ldy);

/* colsum_out[n] = sum_k B[n][k] (int32; |sum| <= 128 * 65535). */
void qt_colsum_s8__ref(int N, int K, const int8_t *B, size_t ldb, int32_t *colsum_out);

/*
 * Requantization epilogue on its own: Y[r][c] = clamp(floor((sat32(acc[r][c]
 * - za * colsum[c] + bias[c]) * m[c] + 2^(n[c]-1)) / 2^n[c]) + zo, qmin, qmax).
 * acc is int32 [rows, cols] with row stride ldacc; colsum and bias are [cols]
 * or NULL (0). qt_requant_q31__ref(qt_qgemm(...)) == qt_qgemm_requant(...).
 * All pointers borrowed.
 */
void qt_requant_q31__ref(int rows, int cols, const int32_t *acc, size_t ldacc, int32_t za,
			 const int32_t *colsum, const int32_t *bias, const struct qt_rq *rq,
			 uint8_t *Y, size_t ldy);

/* ---------------------------------------------------------------------- */
/* Grouped weights                                                         */

/* colsum_g_out[n * ngroups + g] = sum over group g of B[n][k] (channel-major
 * [N, ngroups], ngroups = ceil(K / G); the last group may be shorter). */
void qt_colsum_groups_s8__ref(int N, int K, int G, const int8_t *B, size_t ldb,
			      int32_t *colsum_g_out);

/*
 * The reference grouped GEMM on unpacked B (int8 [N, K], row stride ldb);
 * otherwise as qt_qgemm_group_packed_fn. (qt_qgemm_u8s8_ref.gemm_group_requant
 * is the same on the reference packing, ldb = K.)
 */
void qt_qgemm_group_requant__ref(int M, int N, int K, int G, const uint8_t *A, size_t lda,
				 int32_t za, const int8_t *B, size_t ldb, const int32_t *colsum_g,
				 const int32_t *ratio, const int64_t *bias64,
				 const struct qt_rq *rq, uint8_t *Y, size_t ldy);

typedef void (*qt_qgemm_group_requant_fn)(int M, int N, int K, int G, const uint8_t *A,
					  size_t lda, int32_t za, const int8_t *B, size_t ldb,
					  const int32_t *colsum_g, const int32_t *ratio,
					  const int64_t *bias64, const struct qt_rq *rq, uint8_t *Y,
					  size_t ldy);

/* ---------------------------------------------------------------------- */
/* Elementwise                                                             */

/*
 * Quantized Add: real_y = s_a (qa - za) + s_b (qb - zb). Both inputs are
 * moved to a common fixed point with 2^QT_QADD_LSHIFT fractional headroom:
 *   xa = (qa - za) * 2^20               (|xa| <= 255 * 2^20 < 2^28)
 *   ta = rule(xa, ma, na), tb likewise  (real_a = s_a / (2 max(s_a, s_b)) <= 1/2)
 *   y  = rule(ta + tb, mo, no)          (real_o = 2 max(s_a, s_b) / (s_y 2^20))
 *   out = clamp(y + zo, qmin, qmax)
 * where rule(x, m, n) = floor((x * m + 2^(n-1)) / 2^n) as for GEMMs.
 */
#define QT_QADD_LSHIFT 20
struct qt_qadd_params {
	int32_t za, zb;     /* input zero points, [0, 255] */
	int32_t ma, mb;     /* input rescale multipliers (0 if negligible) */
	int na, nb;         /* and shifts, [1, 62] */
	int32_t mo;         /* output multiplier */
	int no;             /* and shift */
	int32_t zo, qmin, qmax;
};

/* Quantized Mul: y = rule((qa - za) * (qb - zb), m, n) (|product| <= 65025),
 * real multiplier s_a s_b / s_y; out = clamp(y + zo, qmin, qmax). */
struct qt_qmul_params {
	int32_t za, zb;
	int32_t m;
	int n;
	int32_t zo, qmin, qmax;
};

/*
 * Fill the parameters from scales (finite, > 0) and zero points. Runs at model
 * preparation (double allowed). A real multiplier below 2^-32 becomes m = 0
 * (its contribution rounds to 0 anyway); one >= 2^30 is QT_E_UNSUPPORTED.
 * Zero points / clamps out of [0, 255] or scales not finite and > 0 give
 * QT_E_INVALID_ARG / QT_E_NUMERIC with a message; *out is untouched then.
 */
enum qt_status qt_qadd_prepare(double s_a, int32_t za, double s_b, int32_t zb, double s_y,
			       int32_t zo, int32_t qmin, int32_t qmax,
			       struct qt_qadd_params *out);
enum qt_status qt_qmul_prepare(double s_a, int32_t za, double s_b, int32_t zb, double s_y,
			       int32_t zo, int32_t qmin, int32_t qmax,
			       struct qt_qmul_params *out);

/* y[i] = qadd(a[i * a_stride], b[i * b_stride]) for i < n. Strides are in
 * elements; 0 broadcasts a scalar. y is contiguous and may alias a or b when
 * the aliased stride is 1. */
typedef void (*qt_qadd_fn)(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,
			   size_t b_stride, uint8_t *y, const struct qt_qadd_params *p);
typedef void (*qt_qmul_fn)(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,
			   size_t b_stride, uint8_t *y, const struct qt_qmul_params *p);
void qt_qadd_u8__ref(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,
		     size_t b_stride, uint8_t *y, const struct qt_qadd_params *p);
void qt_qmul_u8__ref(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,
		     size_t b_stride, uint8_t *y, const struct qt_qmul_params *p);

/* ---------------------------------------------------------------------- */
/* Sub-byte packing: a little-endian bit stream, element i in bits          */
/* [bits * i, bits * (i + 1)) (int4: low nibble first; int2: bits 1:0      */
/* first; int3: 8 elements per 3 bytes, a field may straddle two bytes).   */
/* Signed values are two's complement. Unused high bits of the last byte   */
/* are written as 0.                                                       */

/* Bytes holding n elements of `bits` (4, 3 or 2) bits. */
static inline size_t qt_packed_bytes(size_t n, int bits)
{
	return (n * (size_t)bits + 7) / 8;
}

/* Pack n values into qt_packed_bytes(n, 4 or 2) bytes of dst. Returns
 * QT_E_INVALID_ARG (naming the first bad index) if a value is outside the
 * type's range ([-8,7], [0,15], [-2,1], [0,3]); dst is then partly written. */
enum qt_status qt_pack_s4(const int8_t *src, size_t n, uint8_t *dst);
enum qt_status qt_pack_u4(const uint8_t *src, size_t n, uint8_t *dst);
enum qt_status qt_pack_s2(const int8_t *src, size_t n, uint8_t *dst);
enum qt_status qt_pack_u2(const uint8_t *src, size_t n, uint8_t *dst);
/* int8 in [-4, 3] -> qt_packed_bytes(n, 3) = ceil(3n / 8) bytes. */
enum qt_status qt_pack_s3(const int8_t *src, size_t n, uint8_t *dst);
/* Unpack n values (every bit pattern is valid; padding bits are ignored). */
void qt_unpack_s4(const uint8_t *src, size_t n, int8_t *dst);
void qt_unpack_u4(const uint8_t *src, size_t n, uint8_t *dst);
void qt_unpack_s2(const uint8_t *src, size_t n, int8_t *dst);
void qt_unpack_u2(const uint8_t *src, size_t n, uint8_t *dst);
void qt_unpack_s3(const uint8_t *src, size_t n, int8_t *dst);

/* ---------------------------------------------------------------------- */
/* Dispatch                                                                */

enum qt_isa {
	QT_ISA_REF = 0,     /* portable C */
	QT_ISA_AVX2,        /* AVX2 + FMA + F16C, OS saves YMM */
	QT_ISA_AVX512VNNI,  /* AVX-512 F/BW/VL/VNNI, OS saves ZMM and opmasks */
	QT_ISA_COUNT
};

/* The manifest's declarations: every optimized kernel's functions. The
 * optional grouped function (NULL in some entries) is declared below. */
#define QT_QGEMM_KERNEL(name, isa, mr, nr, kr, packed_size, pack, gemm, gemm_requant, \
			gemm_group_requant)                                           \
	size_t packed_size(int N, int K);                                           \
	void pack(int N, int K, const int8_t *B, size_t ldb, void *packed,           \
		  int32_t *colsum_out);                                              \
	void gemm(int M, int N, int K, const uint8_t *A, size_t lda,                 \
		  const void *packed_B, int32_t *C, size_t ldc);                     \
	void gemm_requant(int M, int N, int K, const uint8_t *A, size_t lda,         \
			  const void *packed_B, int32_t za, const int32_t *colsum,   \
			  const int32_t *bias, const struct qt_rq *rq, uint8_t *Y,   \
			  size_t ldy);
#define QT_QADD_KERNEL(name, isa, fn)                                               \
	void fn(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b,      \
		size_t b_stride, uint8_t *y, const struct qt_qadd_params *p);
#include "kernels/kernels.def"
#undef QT_QGEMM_KERNEL
#undef QT_QADD_KERNEL
void qt_qgemm_group_requant_u8s8_8x32c4__avx512vnni(int M, int N, int K, int G, const uint8_t *A,
						    size_t lda, int32_t za, const void *packed_B,
						    const int32_t *colsum_g, const int32_t *ratio,
						    const int64_t *bias64, const struct qt_rq *rq,
						    uint8_t *Y, size_t ldy);

/* A quantized Add kernel: the reference first, then the manifest's
 * (kernels.def), terminated by a NULL name. The dispatcher, the tests and the
 * benchmark all read this one list. */
struct qt_qadd_kernel {
	const char *name;
	int isa; /* enum qt_isa */
	qt_qadd_fn fn;
};
extern const struct qt_qadd_kernel qt_qadd_kernels[];

/* The kernel set used for one ISA. Static storage; never freed. */
struct qt_kernels {
	int isa;                              /* enum qt_isa */
	const char *isa_name;                 /* "ref", "avx2", "avx512vnni" */
	const struct qt_qgemm_kernel *qgemm;  /* first manifest kernel of this ISA, or the
						 ISA below's */
	qt_qgemm_group_requant_fn qgemm_group_requant; /* reference, on unpacked B */
	const struct qt_qgemm_kernel *qgemm_group; /* optimized grouped path: first kernel
						      of this ISA (or below) with a
						      gemm_group_requant; pack grouped
						      weights with its pack */
	qt_qadd_fn qadd;                      /* first manifest Add of this ISA, or the ISA below's */
	const char *qadd_name;
	qt_qmul_fn qmul;                      /* ref for now */
};

/* "ref", "avx2", "avx512vnni"; "?" if out of range. */
const char *qt_isa_name(int isa);

/* 1 if this CPU and OS can run kernels of `isa` (cpuid + xgetbv, checked once). */
int qt_isa_available(int isa);

/*
 * Choose the kernel set. isa_or_null names an ISA ("ref", "avx2",
 * "avx512vnni"); NULL means $QT_ISA if set and non-empty, else the best ISA
 * this CPU supports. The choice becomes the process-wide active set (see
 * qt_kernels_active). Returns QT_E_INVALID_ARG for an unknown name and
 * QT_E_UNSUPPORTED when the named ISA is not available on this CPU — never a
 * silent fallback; *out is untouched on error. *out is static, never freed.
 */
enum qt_status qt_kernels_select(const char *isa_or_null, const struct qt_kernels **out);

/* The active kernel set: the last one qt_kernels_select chose, or, if none
 * yet, qt_kernels_select(NULL, ...)'s choice; NULL if that fails (see
 * qt_error_msg()). */
const struct qt_kernels *qt_kernels_active(void);

#endif
