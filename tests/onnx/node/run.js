// Runs an ONNX model in ONNX Runtime (onnxruntime-node, CPU) for the tests of samdistill's
// ONNX export. Usage: node run.js JOB.json, where JOB is
//   {"model": "x.onnx", "threads": 2, "repeats": 1, "out_dir": "DIR",
//    "feeds": [{"name": {"type": "float32" | "int64", "dims": [..], "file": "raw.bin"}}, ...],
//    "optimization": "all" (or "basic", "extended"), "optimized_model": "y.onnx" (optional)}
// with each input's values raw little-endian in its file. One session runs every feed: feed k's
// outputs go to DIR/<k>.<name>.bin (float32), and DIR/result.json holds
// {"outputs": [{name: dims}, ...], "times_ms": [[...], ...], "load_ms"}. With repeats > 1 each
// feed runs once untimed first. With optimized_model, the graph as ONNX Runtime optimised it at
// load is written there.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function tensorOf(spec) {
  const bytes = fs.readFileSync(spec.file);
  const Type = spec.type === 'int64' ? BigInt64Array : Float32Array;
  const values = new Type(bytes.buffer, bytes.byteOffset, bytes.byteLength / Type.BYTES_PER_ELEMENT);
  return new ort.Tensor(spec.type, values.slice(), spec.dims);
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(job.model, {
    intraOpNumThreads: job.threads || 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: job.optimization || 'all',
    ...(job.optimized_model ? {optimizedModelFilePath: job.optimized_model} : {}),
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const repeats = Math.max(1, job.repeats || 1);
  const result = {outputs: [], times_ms: [], load_ms: loadMs};
  for (const [k, specs] of job.feeds.entries()) {
    const feeds = {};
    for (const [name, spec] of Object.entries(specs)) feeds[name] = tensorOf(spec);
    const times = [];
    let outputs;
    for (let i = 0; i < (repeats > 1 ? repeats + 1 : 1); ++i) {
      const start = process.hrtime.bigint();
      outputs = await session.run(feeds);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (repeats === 1 || i > 0) times.push(ms);
    }
    const dims = {};
    for (const [name, tensor] of Object.entries(outputs)) {
      const data = tensor.type === 'float32' ? tensor.data : Float32Array.from(tensor.data, Number);
      fs.writeFileSync(path.join(job.out_dir, k + '.' + name + '.bin'),
                       Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      dims[name] = tensor.dims;
    }
    result.outputs.push(dims);
    result.times_ms.push(times);
  }
  fs.writeFileSync(path.join(job.out_dir, 'result.json'), JSON.stringify(result));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
