#pragma once
#include <string>

// `samdistill export --format onnx --web DIR`: a page that runs encoder.onnx and decoder.onnx in
// the browser with onnxruntime-web (WebAssembly, one thread), served from DIR with no network:
// open an image, click points or drag a box, see the mask. The page preprocesses as SAM does
// (PIL's bilinear resize to a longest side of 1024, pixel mean/std, zero padding) and scales the
// prompts as ResizeLongestSide.apply_coords.
namespace sd::onnx {

// onnxruntime-web's package folder (…/node_modules/onnxruntime-web): `given` when not empty,
// else $SAMDISTILL_ORT_WEB, else node_modules/onnxruntime-web in the current folder or one
// above it. sd::Error saying how to install it when none holds the files the page needs.
std::string find_ort_web(const std::string& given);

// Writes DIR/index.html, DIR/app.js and onnxruntime-web's WebAssembly build (copied from
// `ort_web`) and copies encoder.onnx and decoder.onnx from `models_dir` unless it is DIR.
// Returns DIR/index.html.
std::string write_web_page(const std::string& dir, const std::string& models_dir,
                           const std::string& ort_web);

}  // namespace sd::onnx
