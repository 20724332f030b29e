/*
 * Sub-byte pack/unpack for int4/uint4 (two per byte, low nibble first),
 * int3 (eight per three bytes) and int2/uint2 (four per byte, bits 1:0
 * first): all are the same little-endian bit stream, element i in bits
 * [b * i, b * (i + 1)). Signed values are two's complement; unused bits of
 * the last byte are written as 0.
 */
#include <string.h>

#include "kernels/kernels.h"

/* Generic packer: `bits` in {2, 4}; lo/hi is the valid value range. */
static enum qt_status pack_bits(size_t n, int bits, int lo, int hi, int (*get)(const void *, size_t),
				const void *src, uint8_t *dst, const char *type)
{
	int per = 8 / bits;
	unsigned mask = (1u << bits) - 1;
	memset(dst, 0, qt_packed_bytes(n, bits));
	for (size_t i = 0; i < n; i++) {
		int v = get(src, i);
		if (v < lo || v > hi)
			return qt_error(QT_E_INVALID_ARG, "%s pack: element %zu is %d, outside [%d, %d]",
					type, i, v, lo, hi);
		dst[i / per] |= (uint8_t)(((unsigned)v & mask) << (bits * (int)(i % per)));
	}
	return QT_OK;
}

static int get_s8(const void *p, size_t i)
{
	return ((const int8_t *)p)[i];
}

static int get_u8(const void *p, size_t i)
{
	return ((const uint8_t *)p)[i];
}

/* Field i of `bits` bits, unsigned. */
static unsigned field(const uint8_t *src, size_t i, int bits)
{
	int per = 8 / bits;
	return (src[i / per] >> (bits * (int)(i % per))) & ((1u << bits) - 1);
}

/* Sign-extend a `bits`-bit two's complement field. */
static int8_t sext(unsigned f, int bits)
{
	return (int8_t)((int)f - ((f >> (bits - 1)) ? (1 << bits) : 0));
}

/* int8 in [-8, 7] -> (n + 1) / 2 bytes. */
enum qt_status qt_pack_s4(const int8_t *src, size_t n, uint8_t *dst)
{
	return pack_bits(n, 4, -8, 7, get_s8, src, dst, "int4");
}

/* uint8 in [0, 15] -> (n + 1) / 2 bytes. */
enum qt_status qt_pack_u4(const uint8_t *src, size_t n, uint8_t *dst)
{
	return pack_bits(n, 4, 0, 15, get_u8, src, dst, "uint4");
}

/* int8 in [-2, 1] -> (n + 3) / 4 bytes. */
enum qt_status qt_pack_s2(const int8_t *src, size_t n, uint8_t *dst)
{
	return pack_bits(n, 2, -2, 1, get_s8, src, dst, "int2");
}

/* uint8 in [0, 3] -> (n + 3) / 4 bytes. */
enum qt_status qt_pack_u2(const uint8_t *src, size_t n, uint8_t *dst)
{
	return pack_bits(n, 2, 0, 3, get_u8, src, dst, "uint2");
}

/* (n + 1) / 2 bytes -> n int8 in [-8, 7]. */
void qt_unpack_s4(const uint8_t *src, size_t n, int8_t *dst)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = sext(field(src, i, 4), 4);
}

/* (n + 1) / 2 bytes -> n uint8 in [0, 15]. */
void qt_unpack_u4(const uint8_t *src, size_t n, uint8_t *dst)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (uint8_t)field(src, i, 4);
}

/* (n + 3) / 4 bytes -> n int8 in [-2, 1]. */
void qt_unpack_s2(const uint8_t *src, size_t n, int8_t *dst)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = sext(field(src, i, 2), 2);
}

/* (n + 3) / 4 bytes -> n uint8 in [0, 3]. */
void qt_unpack_u2(const uint8_t *src, size_t n, uint8_t *dst)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (uint8_t)field(src, i, 2);
}

/*
 * int3: a little-endian bit stream, element i in bits [3i, 3i + 3) (so every
 * 8 elements fill exactly 3 bytes: element j of a run in bits 3j..3j+2 of
 * the 24-bit little-endian word those bytes form). Packing writes each
 * element's field, which may straddle two bytes.
 */
enum qt_status qt_pack_s3(const int8_t *src, size_t n, uint8_t *dst)
{
	memset(dst, 0, qt_packed_bytes(n, 3));
	for (size_t i = 0; i < n; i++) {
		int v = src[i];
		if (v < -4 || v > 3)
			return qt_error(QT_E_INVALID_ARG, "int3 pack: element %zu is %d, outside [-4, 3]", i, v);
		unsigned f = (unsigned)v & 7u;
		size_t bit = 3 * i;
		dst[bit / 8] |= (uint8_t)(f << (bit % 8));
		if (bit % 8 > 5)
			dst[bit / 8 + 1] |= (uint8_t)(f >> (8 - bit % 8));
	}
	return QT_OK;
}

/* ceil(3n / 8) bytes -> n int8 in [-4, 3]: whole runs of 8 elements from one
 * 24-bit word each, then the tail field by field (never reads past the
 * ceil(3n / 8) bytes). */
void qt_unpack_s3(const uint8_t *src, size_t n, int8_t *dst)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8, src += 3) {
		uint32_t w = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16;
		for (int j = 0; j < 8; j++)
			dst[i + j] = sext((w >> (3 * j)) & 7u, 3);
	}
	for (size_t j = 0; i < n; i++, j++) {
		size_t bit = 3 * j;
		unsigned f = src[bit / 8] >> (bit % 8);
		if (bit % 8 > 5)
			f |= (unsigned)src[bit / 8 + 1] << (8 - bit % 8);
		dst[i] = sext(f & 7u, 3);
	}
}
