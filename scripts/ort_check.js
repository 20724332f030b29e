// Runs a model exported by `qtool export` in ONNX Runtime (onnxruntime-node)
// and qtool's integer runtime on the same Fashion-MNIST test images, and
// compares them: top-1 of each, and how many output codes are equal.
// Not part of qtool: scripts/ort_check.sh installs onnxruntime-node into
// build/ort and runs this with NODE_PATH pointing there.
//
//   node scripts/ort_check.js --qtool BIN --qmod M.qmod --onnx M.qdq.onnx
//        --tmp DIR [--limit N] [--chunk N] [--threads N] [--fusion on|off]
//
// --fusion off sets ONNX Runtime's session.disable_quant_qdq: QDQ groups run
// as the float ops the ONNX spec defines instead of ORT's fused integer
// kernels (QLinearConv, QLinearSoftmax, ...). Default: on, as users run it.
//
// Prints one line "RESULT name=... n=... ort_top1=... qtool_top1=...
// codes_equal=... max_code_diff=..." and exits 0; exits 1 on a failure to
// run (the thresholds are checked by the caller).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { execFileSync } = require('child_process');
const ort = require('onnxruntime-node');

const FMNIST = '/usr/share/datasets/fashion-mnist';

function args() {
  const a = { limit: 10000, chunk: 1000, threads: 2, fusion: 'on' };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a) && !['qtool', 'qmod', 'onnx', 'tmp'].includes(k)) throw new Error(`unknown option ${v[i]}`);
    a[k] = ['limit', 'chunk', 'threads'].includes(k) ? parseInt(v[i + 1], 10) : v[i + 1];
  }
  for (const k of ['qtool', 'qmod', 'onnx', 'tmp']) if (!a[k]) throw new Error(`--${k} is required`);
  return a;
}

// IDX files: big-endian header, then unsigned bytes.
function readIdx(file, headerBytes) {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  return { count: b.readUInt32BE(4), data: b.subarray(headerBytes) };
}

// qtool's fashion-mnist preprocessing (calib/dataset.c), in float32 steps:
// x / 255, - 0.2860, / 0.3530.
function preprocess(px, out) {
  const fr = Math.fround, m = fr(0.2860), s = fr(0.3530);
  for (let i = 0; i < px.length; i++) out[i] = fr(fr(fr(px[i] / 255) - m) / s);
}

function writeNpyF32(file, shape, data) {
  let hdr = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + hdr.length + 1;
  hdr += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(hdr.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(hdr, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

function readNpyF32(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not an .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = (major === 1 ? 10 : 12) + hlen;
  const hdr = b.toString('latin1', major === 1 ? 10 : 12, off);
  if (!hdr.includes("'<f4'")) throw new Error(`${file}: expected float32, header ${hdr}`);
  const shape = hdr.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const copy = Buffer.from(b.subarray(off));
  return { shape, data: new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4) };
}

function argmax(v, o, n) {
  let b = 0;
  for (let i = 1; i < n; i++) if (v[o + i] > v[o + b]) b = i;
  return b;
}

async function main() {
  const a = args();
  const img = readIdx(`${FMNIST}/t10k-images-idx3-ubyte.gz`, 16);
  const lab = readIdx(`${FMNIST}/t10k-labels-idx1-ubyte.gz`, 8);
  const N = Math.min(a.limit, img.count), HW = 28 * 28;
  fs.mkdirSync(a.tmp, { recursive: true });
  const opts = { intraOpNumThreads: a.threads, interOpNumThreads: 1 };
  if (a.fusion === 'off') opts.extra = { session: { disable_quant_qdq: '1' } };
  else if (a.fusion !== 'on') throw new Error(`--fusion must be on or off, not ${a.fusion}`);
  const sess = await ort.InferenceSession.create(a.onnx, opts);
  const inName = sess.inputNames[0], outName = sess.outputNames[0];
  let ortOk = 0, qOk = 0, agreeTop1 = 0, equal = 0, total = 0, maxDiff = 0;
  const qAll = [], oAll = [];
  for (let s0 = 0; s0 < N; s0 += a.chunk) {
    const n = Math.min(a.chunk, N - s0);
    const x = new Float32Array(n * HW);
    preprocess(img.data.subarray(s0 * HW, (s0 + n) * HW), x);
    const xf = path.join(a.tmp, 'x.npy'), od = path.join(a.tmp, 'out');
    writeNpyF32(xf, [n, 1, 28, 28], x);
    const printed = execFileSync(a.qtool, ['run', a.qmod, '--input', `${inName}=${xf}`, '--output', od], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const q = readNpyF32(printed.trim().split('\n').pop());
    const y = (await sess.run({ [inName]: new ort.Tensor('float32', x, [n, 1, 28, 28]) }))[outName].data;
    const K = q.data.length / n;
    if (y.length !== q.data.length) throw new Error(`output sizes differ: ORT ${y.length}, qtool ${q.data.length}`);
    for (let i = 0; i < n; i++) {
      const t = lab.data[s0 + i], po = argmax(y, i * K, K), pq = argmax(q.data, i * K, K);
      ortOk += po === t;
      qOk += pq === t;
      agreeTop1 += po === pq;
    }
    // Both outputs are scale * (code - zero_point) computed in float from the
    // same two floats, so equal codes <=> equal values.
    for (let i = 0; i < y.length; i++) {
      equal += y[i] === q.data[i];
      total++;
    }
    qAll.push(q.data);
    oAll.push(y);
  }
  // The output step (the scale): the smallest gap between distinct values.
  const vals = Float32Array.from(qAll.flatMap((v) => Array.from(v))).sort();
  let step = Infinity;
  for (let i = 1; i < vals.length; i++) if (vals[i] > vals[i - 1]) step = Math.min(step, vals[i] - vals[i - 1]);
  for (let c = 0; c < qAll.length; c++)
    for (let i = 0; i < qAll[c].length; i++) maxDiff = Math.max(maxDiff, Math.round(Math.abs(qAll[c][i] - oAll[c][i]) / step));
  const pct = (k, d) => (100 * k / d).toFixed(2);
  console.log(`RESULT name=${path.basename(a.qmod, '.qmod')} n=${N} ort_top1=${pct(ortOk, N)} qtool_top1=${pct(qOk, N)} ` +
    `fusion=${a.fusion} top1_agree=${pct(agreeTop1, N)} codes_equal=${pct(equal, total)} max_code_diff=${Number.isFinite(step) ? maxDiff : 0} ` +
    `ort=${ort.env.versions.common}`);
}

main().catch((e) => {
  console.error(`ort_check.js: ${e.message}`);
  process.exit(1);
});
