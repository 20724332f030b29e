# Dev-time tool (not run by the tests): set the i64 values of one INTS attribute
# (index in the ATTRS section) of a .qmod and fix the DATA section's CRC.
# Made tests/regress/fuzz_qmod/conv_pads_beyond_kernel.qmod:
#   python3 tests/regress/qmod_set_ints.py tests/fuzz/corpus/qmod/conv_w8a8.qmod \
#       tests/regress/fuzz_qmod/conv_pads_beyond_kernel.qmod 0 20000,20000,20000,20000
# (attribute 0 is the Conv's pads; DATA is stored uncompressed, FORMAT.md).
import struct, zlib, sys
src, dst, attr_index, vals = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(v) for v in sys.argv[4].split(',')]
b = bytearray(open(src, 'rb').read())
n = struct.unpack_from('<I', b, 12)[0]
secs = {}
for i in range(n):
    k, crc, off, ln, ul = struct.unpack_from('<IIQQQ', b, 64 + 32 * i)
    secs[k] = (i, off, ln, ul)
i, off, ln, ul = secs[8]
A = zlib.decompress(bytes(b[off:off + ln])) if ul else bytes(b[off:off + ln])
t, nn, iv, fv, z, pl = struct.unpack_from('<IIqfIQ', A, 4 + 40 * attr_index + 8)
assert t == 6 and nn == len(vals), (t, nn)
di, doff, dln, dul = secs[11]
struct.pack_into('<%dq' % nn, b, doff + pl, *vals)
struct.pack_into('<I', b, 64 + 32 * di + 4, zlib.crc32(bytes(b[doff:doff + dln])))
open(dst, 'wb').write(b)
