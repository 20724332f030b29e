// Times ONNX Runtime (onnxruntime-node, installed into build/ort by
// scripts/bench_ort.sh) on one model: the peer qtool is compared with, never
// a qtool dependency.
//   node scripts/bench_ort.js MODEL.onnx DIMS BATCH ITERS THREADS
// DIMS is the per-sample input shape, e.g. 3,224,224. Prints the fastest of
// ITERS runs in milliseconds per batch on random inputs (uniform in [-1, 1),
// fixed seed): the statistic bench_ort.sh takes from `qtool bench` (its min).
'use strict';
const path = require('path');
const ort = require(path.resolve(__dirname, '../build/ort/node_modules/onnxruntime-node'));

async function main() {
  const [model, dims, batch, iters, threads] = process.argv.slice(2);
  const shape = [Number(batch), ...dims.split(',').map(Number)];
  const sess = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    x[i] = (seed >>> 8) / (1 << 23) - 1;
  }
  const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', x, shape) };
  for (let i = 0; i < 2; i++) await sess.run(feeds);
  const ms = [];
  for (let i = 0; i < Number(iters); i++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  console.log(Math.min(...ms).toFixed(3));
}

main().catch((e) => {
  console.error('bench_ort.js: ' + (e && e.message ? e.message : e));
  process.exit(1);
});
