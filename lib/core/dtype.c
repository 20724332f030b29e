/* Element type facts and the mapping to ONNX TensorProto.DataType. */
#include "qtool/qtool.h"

static const struct {
	const char *name;
	int bits;
	int onnx;
} dtype_info[QT_DTYPE_COUNT] = {
	[QT_DTYPE_UNDEFINED] = {"undefined", 0, 0},
	[QT_DTYPE_F32] = {"float32", 32, 1},
	[QT_DTYPE_U8] = {"uint8", 8, 2},
	[QT_DTYPE_I8] = {"int8", 8, 3},
	[QT_DTYPE_U16] = {"uint16", 16, 4},
	[QT_DTYPE_I16] = {"int16", 16, 5},
	[QT_DTYPE_I32] = {"int32", 32, 6},
	[QT_DTYPE_I64] = {"int64", 64, 7},
	[QT_DTYPE_STRING] = {"string", 0, 8},
	[QT_DTYPE_BOOL] = {"bool", 8, 9},
	[QT_DTYPE_F16] = {"float16", 16, 10},
	[QT_DTYPE_F64] = {"float64", 64, 11},
	[QT_DTYPE_U32] = {"uint32", 32, 12},
	[QT_DTYPE_U64] = {"uint64", 64, 13},
	[QT_DTYPE_S4] = {"int4", 4, 0},
	[QT_DTYPE_U4] = {"uint4", 4, 0},
	[QT_DTYPE_S2] = {"int2", 2, 0},
	[QT_DTYPE_U2] = {"uint2", 2, 0},
	[QT_DTYPE_FP8_E4M3] = {"float8e4m3", 8, 0},
	[QT_DTYPE_FP8_E5M2] = {"float8e5m2", 8, 0},
	[QT_DTYPE_S3] = {"int3", 3, 0},
	[QT_DTYPE_FP6_E3M2] = {"float6e3m2", 6, 0},
	[QT_DTYPE_FP6_E2M3] = {"float6e2m3", 6, 0},
	[QT_DTYPE_FP4_E2M1] = {"float4e2m1", 4, 0},
};

const char *qt_dtype_name(enum qt_dtype dt)
{
	if ((unsigned)dt >= QT_DTYPE_COUNT)
		return "invalid";
	return dtype_info[dt].name;
}

int qt_dtype_bits(enum qt_dtype dt)
{
	if ((unsigned)dt >= QT_DTYPE_COUNT)
		return 0;
	return dtype_info[dt].bits;
}

size_t qt_dtype_nbytes(enum qt_dtype dt, int64_t n)
{
	int bits = qt_dtype_bits(dt);
	if (n <= 0 || bits == 0)
		return 0;
	return (size_t)(((uint64_t)n * (uint64_t)bits + 7) / 8);
}

enum qt_dtype qt_dtype_from_onnx(int onnx_type)
{
	if (onnx_type <= 0)
		return QT_DTYPE_UNDEFINED;
	for (int i = 1; i < QT_DTYPE_COUNT; i++)
		if (dtype_info[i].onnx == onnx_type)
			return (enum qt_dtype)i;
	return QT_DTYPE_UNDEFINED;
}

int qt_dtype_to_onnx(enum qt_dtype dt)
{
	if ((unsigned)dt >= QT_DTYPE_COUNT)
		return 0;
	return dtype_info[dt].onnx;
}
