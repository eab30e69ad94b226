#include "onnx/web.h"

#include <cstdlib>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::onnx {
namespace {

// onnxruntime-web's WebAssembly build: the script that defines `ort`, the module it imports and
// the binary that module loads (the names of onnxruntime-web 1.2x-1.3x's dist folder).
const char* const kOrtFiles[] = {"ort.wasm.min.js", "ort-wasm-simd-threaded.mjs",
                                 "ort-wasm-simd-threaded.wasm"};

const char* const kIndexHtml = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>samdistill: segment in the browser</title>
<link rel="icon" href="data:,">
<style>
body{font:14px system-ui,sans-serif;margin:16px;color:#222}
#stage{position:relative;display:inline-block;line-height:0}
#stage canvas{max-width:100%}
#stage canvas+canvas{position:absolute;left:0;top:0;width:100%;height:100%}
#prompts{cursor:crosshair}
.hint{color:#666}
</style>
</head>
<body>
<p><input type="file" id="file" accept="image/*" disabled> <button id="clear">Clear prompts</button>
<span id="status">Loading the models…</span></p>
<p class="hint">Click: foreground point. Shift+click or right-click: background point. Drag: box.</p>
<div id="stage"><canvas id="image" width="0" height="0"></canvas><canvas id="mask"></canvas><canvas id="prompts"></canvas></div>
<script src="ort.wasm.min.js"></script>
<script src="app.js"></script>
</body>
</html>
)";

// SAM's preprocessing and prompt transform (segment_anything/utils/transforms.py, SamPredictor),
// the decoder's feeds as SAM's ONNX demo makes them, and the mask drawn where its logit > 0.
// window.samdistill holds the page's state for scripts (the tests read it).
const char* const kAppJs = R"JS('use strict';
(function () {
  const SIZE = 1024, MEAN = [123.675, 116.28, 103.53], STD = [58.395, 57.12, 57.375];
  const state = window.samdistill = {ready: false, image: null, prompts: [], box: null, mask: null,
                                     decodes: 0, loaded: false, error: null};
  const $ = (id) => document.getElementById(id);
  const status = (text) => { $('status').textContent = text; };
  let encoder, decoder, embedding = null, size = null, drag = null, decoding = false, again = false;

  function fail(e) {
    state.error = String(e && e.message || e);
    status('Error: ' + state.error);
    console.error(e);
  }

  // PIL's bilinear resize of 8-bit images (Image.resize, as SAM's apply_image does): fixed-point
  // weights of 22 bits, a horizontal pass then a vertical one, each rounded to bytes.
  const BITS = 22, ONE = 1 << BITS, HALF = 1 << (BITS - 1);
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const first = new Int32Array(outSize), count = new Int32Array(outSize);
    const weights = new Int32Array(outSize * ksize), k = new Float64Array(ksize);
    for (let xx = 0; xx < outSize; ++xx) {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      let ww = 0;
      for (let x = 0; x < n; ++x) {
        const t = Math.abs((x + xmin - center + 0.5) / filterscale);
        k[x] = t < 1 ? 1 - t : 0;
        ww += k[x];
      }
      for (let x = 0; x < n; ++x) {
        const w = ww !== 0 ? k[x] / ww : k[x];
        weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
      }
      first[xx] = xmin;
      count[xx] = n;
    }
    return {first, count, weights, ksize};
  }
  const clip8 = (v) => Math.min(255, Math.max(0, v >> BITS));
  // `src` (w x h x 3) resampled to outW x outH along x (horizontal) or y.
  function pass(src, w, h, outW, outH, horizontal) {
    const c = horizontal ? coefficients(w, outW) : coefficients(h, outH);
    const out = new Uint8Array(outW * outH * 3);
    for (let y = 0; y < outH; ++y)
      for (let x = 0; x < outW; ++x) {
        const i = horizontal ? x : y, k = i * c.ksize;
        let r = HALF, g = HALF, b = HALF;
        for (let t = 0; t < c.count[i]; ++t) {
          const s = horizontal ? (y * w + c.first[i] + t) * 3 : ((c.first[i] + t) * w + x) * 3;
          const wt = c.weights[k + t];
          r += src[s] * wt; g += src[s + 1] * wt; b += src[s + 2] * wt;
        }
        const o = (y * outW + x) * 3;
        out[o] = clip8(r); out[o + 1] = clip8(g); out[o + 2] = clip8(b);
      }
    return out;
  }
  function resize(rgb, w, h, outW, outH) {
    if (outW !== w) rgb = pass(rgb, w, h, outW, h, true);
    if (outH !== h) rgb = pass(rgb, outW, h, outW, outH, false);
    return rgb;
  }

  // ResizeLongestSide.get_preprocess_shape: sizes rounded as Python's int(x + 0.5).
  function resizedSize(h, w) {
    const scale = SIZE / Math.max(h, w);
    return [Math.trunc(h * scale + 0.5), Math.trunc(w * scale + 0.5)];
  }

  // The encoder's input: resized, (x - mean) / std, zero-padded to SIZE x SIZE, planar.
  function preprocess(rgba, w, h) {
    const rgb = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; ++i)
      for (let c = 0; c < 3; ++c) rgb[i * 3 + c] = rgba[i * 4 + c];
    const [nh, nw] = resizedSize(h, w);
    const resized = resize(rgb, w, h, nw, nh);
    const data = new Float32Array(3 * SIZE * SIZE);
    for (let c = 0; c < 3; ++c)
      for (let y = 0; y < nh; ++y)
        for (let x = 0; x < nw; ++x)
          data[c * SIZE * SIZE + y * SIZE + x] = (resized[(y * nw + x) * 3 + c] - MEAN[c]) / STD[c];
    return new ort.Tensor('float32', data, [1, 3, SIZE, SIZE]);
  }

  // The decoder's feeds (SAM's ONNX demo): points, then the box's corners (labels 2 and 3), else
  // a padding point (label -1); coordinates scaled as ResizeLongestSide.apply_coords.
  function feeds() {
    const [nh, nw] = resizedSize(size.h, size.w);
    const pts = state.prompts.map((p) => [p.x, p.y, p.label]);
    if (state.box) {
      const b = state.box;
      pts.push([b.x0, b.y0, 2], [b.x1, b.y1, 3]);
    } else {
      pts.push([0, 0, -1]);
    }
    const coords = new Float32Array(pts.length * 2), labels = new Float32Array(pts.length);
    pts.forEach(([x, y, label], i) => {
      coords[2 * i] = label === -1 ? 0 : x * (nw / size.w);
      coords[2 * i + 1] = label === -1 ? 0 : y * (nh / size.h);
      labels[i] = label;
    });
    return {
      image_embeddings: embedding,
      point_coords: new ort.Tensor('float32', coords, [1, pts.length, 2]),
      point_labels: new ort.Tensor('float32', labels, [1, pts.length]),
      mask_input: new ort.Tensor('float32', new Float32Array(256 * 256), [1, 1, 256, 256]),
      has_mask_input: new ort.Tensor('float32', new Float32Array([0]), [1]),
      orig_im_size: new ort.Tensor('float32', new Float32Array([size.h, size.w]), [2]),
    };
  }

  // SamOnnxModel.select_masks: one prompt point -> the best of the multimask outputs by
  // predicted IoU, more -> the first mask. A decoder exported with --return-single-mask has one.
  function pick(masks, ious, points) {
    if (masks.dims[1] === 1) return 0;
    let best = 0, score = -Infinity;
    for (let i = 0; i < masks.dims[1]; ++i) {
      const s = ious.data[i] + (i === 0 ? (points - 2.5) * 1000 : 0);
      if (s > score) { score = s; best = i; }
    }
    return best;
  }

  function drawMask(masks, index) {
    const [h, w] = masks.dims.slice(2), canvas = $('mask'), ctx = canvas.getContext('2d');
    const picture = ctx.createImageData(w, h), offset = index * w * h;
    let area = 0;
    for (let i = 0; i < w * h; ++i)
      if (masks.data[offset + i] > 0) {
        picture.data.set([30, 144, 255, 140], i * 4);
        ++area;
      }
    ctx.putImageData(picture, 0, 0);
    return area;
  }

  function drawPrompts() {
    const canvas = $('prompts'), ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const r = Math.max(4, Math.round(Math.max(canvas.width, canvas.height) / 150));
    for (const p of state.prompts) {
      ctx.beginPath();
      ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
      ctx.fillStyle = p.label === 1 ? '#2ca02c' : '#d62728';
      ctx.fill();
      ctx.lineWidth = Math.max(1, r / 3);
      ctx.strokeStyle = '#fff';
      ctx.stroke();
    }
    const b = state.box || drag && drag.box;
    if (b) {
      ctx.lineWidth = Math.max(2, r / 2);
      ctx.strokeStyle = '#ffbf00';
      ctx.strokeRect(b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
    }
  }

  async function decode() {
    if (decoding) { again = true; return; }
    decoding = true;
    try {
      do {
        again = false;
        drawPrompts();
        if (!state.prompts.length && !state.box) {
          $('mask').getContext('2d').clearRect(0, 0, size.w, size.h);
          state.mask = null;
          continue;
        }
        const f = feeds();
        const start = performance.now();
        const out = await decoder.run(f);
        const index = pick(out.masks, out.iou_predictions, f.point_labels.dims[1]);
        const area = drawMask(out.masks, index);
        state.mask = {index, iou: out.iou_predictions.data[index], area,
                      ms: performance.now() - start};
        state.decodes += 1;
        status('Mask ' + index + ': predicted IoU ' + state.mask.iou.toFixed(3) + ', ' + area +
               ' pixels (' + state.mask.ms.toFixed(0) + ' ms)');
      } while (again);
    } catch (e) {
      fail(e);
    } finally {
      decoding = false;
    }
  }

  async function open(file) {
    state.ready = false;
    status('Computing the image embedding…');
    const bitmap = await createImageBitmap(file, {colorSpaceConversion: 'none',
                                                  premultiplyAlpha: 'none'});
    size = {w: bitmap.width, h: bitmap.height};
    for (const id of ['image', 'mask', 'prompts']) {
      $(id).width = size.w;
      $(id).height = size.h;
    }
    const ctx = $('image').getContext('2d', {willReadFrequently: true});
    ctx.drawImage(bitmap, 0, 0);
    const pixels = ctx.getImageData(0, 0, size.w, size.h).data;
    const start = performance.now();
    const out = await encoder.run({image: preprocess(pixels, size.w, size.h)});
    embedding = out.image_embeddings;
    state.image = {width: size.w, height: size.h, encoder_ms: performance.now() - start};
    state.prompts = [];
    state.box = null;
    state.ready = true;
    status('Embedding computed in ' + (state.image.encoder_ms / 1000).toFixed(1) +
           ' s: click or drag on the image.');
    await decode();
  }

  // Event position in image pixels (the canvas may be shown scaled).
  function at(e) {
    const rect = $('prompts').getBoundingClientRect();
    return {x: (e.clientX - rect.left) * size.w / rect.width,
            y: (e.clientY - rect.top) * size.h / rect.height};
  }

  function listen() {
    const canvas = $('prompts');
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
    canvas.addEventListener('mousedown', (e) => {
      if (state.ready) drag = {start: at(e), box: null};
    });
    canvas.addEventListener('mousemove', (e) => {
      if (!drag) return;
      const p = at(e), s = drag.start;
      if (Math.hypot(p.x - s.x, p.y - s.y) < 5) return;
      drag.box = {x0: Math.min(s.x, p.x), y0: Math.min(s.y, p.y),
                  x1: Math.max(s.x, p.x), y1: Math.max(s.y, p.y)};
      drawPrompts();
    });
    window.addEventListener('mouseup', (e) => {
      if (!drag) return;
      const d = drag;
      drag = null;
      if (d.box) {
        state.box = d.box;
      } else {
        const label = e.button === 2 || e.shiftKey ? 0 : 1;
        state.prompts.push({x: d.start.x, y: d.start.y, label});
      }
      decode();
    });
    $('clear').addEventListener('click', () => {
      state.prompts = [];
      state.box = null;
      if (state.ready) decode();
    });
    $('file').addEventListener('change', (e) => {
      if (e.target.files.length) open(e.target.files[0]).catch(fail);
    });
  }

  async function main() {
    ort.env.wasm.numThreads = 1;  // more threads need a cross-origin isolated server
    ort.env.wasm.wasmPaths = new URL('./', location.href).href;
    const options = {executionProviders: ['wasm'], graphOptimizationLevel: 'all'};
    encoder = await ort.InferenceSession.create('encoder.onnx', options);
    decoder = await ort.InferenceSession.create('decoder.onnx', options);
    listen();
    $('file').disabled = false;
    state.loaded = true;
    status('Models loaded: open an image.');
  }
  main().catch(fail);
})();
)JS";

bool holds_ort_files(const fs::path& package) {
  for (const char* name : kOrtFiles)
    if (!fs::is_regular_file(package / "dist" / name)) return false;
  return true;
}

// Copies `from` to `to` atomically (the copy goes through write_file_atomic).
void copy_atomically(const fs::path& from, const fs::path& to) {
  write_file_atomic(to.string(), read_file(from.string()));
}

}  // namespace

std::string find_ort_web(const std::string& given) {
  const std::string files = std::string(kOrtFiles[0]) + ", " + kOrtFiles[1] + ", " + kOrtFiles[2];
  auto checked = [&](const std::string& path, const std::string& source) {
    if (!holds_ort_files(path))
      throw Error(source + " '" + path +
                  "' is not onnxruntime-web's package folder: its dist/ lacks " + files +
                  " (npm install onnxruntime-web, then give its node_modules/onnxruntime-web)");
    return path;
  };
  if (!given.empty()) return checked(given, "--ort-web");
  if (const char* env = std::getenv("SAMDISTILL_ORT_WEB"); env && *env)
    return checked(env, "SAMDISTILL_ORT_WEB");
  for (fs::path dir = fs::current_path();; dir = dir.parent_path()) {
    const fs::path package = dir / "node_modules" / "onnxruntime-web";
    if (holds_ort_files(package)) return package.string();
    if (dir == dir.parent_path()) break;
  }
  throw Error(
      "--web needs onnxruntime-web's files (" + files +
      "): none in node_modules/onnxruntime-web here or in a folder above. Install it with "
      "`npm install onnxruntime-web` and give --ort-web PATH/node_modules/onnxruntime-web or set "
      "SAMDISTILL_ORT_WEB");
}

std::string write_web_page(const std::string& dir, const std::string& models_dir,
                           const std::string& ort_web) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create the folder '" + dir + "': " + ec.message());
  for (const char* name : kOrtFiles)
    copy_atomically(fs::path(ort_web) / "dist" / name, fs::path(dir) / name);
  for (const char* name : {"encoder.onnx.data", "decoder.onnx.data"})
    if (fs::exists(fs::path(models_dir) / name))
      throw Error("--web: '" + (fs::path(models_dir) / name).string() +
                  "' holds the model's external data, which the page does not load (a model "
                  "that large does not fit a browser's WebAssembly memory); export without "
                  "--external-data");
  if (!fs::equivalent(dir, models_dir))
    for (const char* name : {"encoder.onnx", "decoder.onnx"})
      copy_atomically(fs::path(models_dir) / name, fs::path(dir) / name);
  write_file_atomic(dir + "/app.js", kAppJs);
  write_file_atomic(dir + "/index.html", kIndexHtml);
  return dir + "/index.html";
}

}  // namespace sd::onnx
