// Runs an ONNX model in ONNX Runtime (onnxruntime-node, CPU) for the tests of samdistill's
// ONNX export. Usage: node run.js JOB.json, where JOB is
//   {"model": "x.onnx", "threads": 2, "repeats": 1, "out_dir": "DIR",
//    "inputs": {"name": {"type": "float32" | "int64", "dims": [..], "file": "raw.bin"}}}
// with each input's values raw little-endian in its file. Writes each output's values to
// DIR/<name>.bin (float32) and DIR/result.json: {"outputs": {name: dims}, "times_ms": [...],
// "load_ms"}; the first run is a warm-up and not timed when repeats > 1.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(job.model, {
    intraOpNumThreads: job.threads || 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const feeds = {};
  for (const [name, spec] of Object.entries(job.inputs)) {
    const bytes = fs.readFileSync(spec.file);
    const Array = spec.type === 'int64' ? BigInt64Array : Float32Array;
    const values = new Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / Array.BYTES_PER_ELEMENT);
    feeds[name] = new ort.Tensor(spec.type, values.slice(), spec.dims);
  }
  const repeats = Math.max(1, job.repeats || 1);
  const times = [];
  let results;
  for (let i = 0; i < (repeats > 1 ? repeats + 1 : 1); ++i) {
    const start = process.hrtime.bigint();
    results = await session.run(feeds);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (repeats === 1 || i > 0) times.push(ms);
  }
  const outputs = {};
  for (const [name, tensor] of Object.entries(results)) {
    const data = tensor.type === 'float32' ? tensor.data : Float32Array.from(tensor.data, Number);
    fs.writeFileSync(path.join(job.out_dir, name + '.bin'), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    outputs[name] = tensor.dims;
  }
  fs.writeFileSync(path.join(job.out_dir, 'result.json'),
                   JSON.stringify({outputs, times_ms: times, load_ms: loadMs}));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
