#include "models/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <sstream>
#include <vector>

#include "util/error.h"
#include "util/vectorise.h"

namespace sd::models {
namespace {

constexpr int64_t kImageSize = 1024;
constexpr int64_t kPlane = kImageSize * kImageSize;
constexpr float kMean[3] = {float(kPixelMean[0]), float(kPixelMean[1]), float(kPixelMean[2])};
constexpr float kStd[3] = {float(kPixelStd[0]), float(kPixelStd[1]), float(kPixelStd[2])};

// Recycles the 12 MiB buffers of the results: a fresh one faults in 3,072 pages, which costs
// as much as filling them. A buffer comes back when the last tensor using it dies, on any
// thread (the loader's batches copy them on the trainer's), hence the lock; at most
// kKeep wait for reuse. Never destroyed, so that tensors alive at exit can still return theirs.
class BufferPool {
 public:
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool;
    return *pool;
  }

  at::Tensor take() {
    void* buffer = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        buffer = free_.back();
        free_.pop_back();
      }
    }
    if (!buffer && !(buffer = std::aligned_alloc(64, kPlane * 3 * sizeof(float))))
      throw std::bad_alloc();
    return at::from_blob(
        buffer, {3, kImageSize, kImageSize}, [](void* p) { instance().give(p); }, at::kFloat);
  }

 private:
  static constexpr size_t kKeep = 8;

  void give(void* buffer) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (free_.size() < kKeep) {
      free_.push_back(buffer);
    } else {
      lock.unlock();
      std::free(buffer);
    }
  }

  std::mutex mutex_;
  std::vector<void*> free_;
};

Error shape_error(const std::string& got) {
  return Error("normalize_and_pad: expected a uint8 HxWx3 image with sides <= 1024, got " + got);
}

// One row of RGB pixels into the three channel rows: the same float arithmetic as the tensor
// expression in normalize_and_pad (so the same bits), vectorised.
SD_VECTORISED void normalise_row(const uint8_t* __restrict rgb, int64_t width, float* __restrict r,
                                 float* __restrict g, float* __restrict b) {
  for (int64_t x = 0; x < width; ++x) {
    r[x] = (static_cast<float>(rgb[3 * x]) - kMean[0]) / kStd[0];
    g[x] = (static_cast<float>(rgb[3 * x + 1]) - kMean[1]) / kStd[1];
    b[x] = (static_cast<float>(rgb[3 * x + 2]) - kMean[2]) / kStd[2];
  }
}

}  // namespace

NormalizeAndPad::NormalizeAndPad(int64_t height, int64_t width)
    : width_(width), pixels_(BufferPool::instance().take()), data_(pixels_.data_ptr<float>()) {
  if (height > kImageSize || width > kImageSize)
    throw shape_error(std::to_string(height) + "x" + std::to_string(width) + "x3");
  for (int c = 0; c < 3; ++c) {
    float* plane = data_ + c * kPlane;
    for (int64_t y = 0; y < height; ++y)
      std::fill(plane + y * kImageSize + width, plane + (y + 1) * kImageSize, 0.0f);
    std::fill(plane + height * kImageSize, plane + kPlane, 0.0f);
  }
}

void NormalizeAndPad::set_row(int64_t y, const uint8_t* rgb) {
  float* r = data_ + y * kImageSize;
  normalise_row(rgb, width_, r, r + kPlane, r + 2 * kPlane);
}

at::Tensor normalize_and_pad(const at::Tensor& image) {
  if (image.scalar_type() != at::kByte || image.dim() != 3 || image.size(2) != 3 ||
      image.size(0) > kImageSize || image.size(1) > kImageSize) {
    std::ostringstream shape;
    shape << image.sizes();
    throw shape_error(std::string(at::toString(image.scalar_type())) + " " + shape.str());
  }
  if (!image.is_cpu()) {
    auto options = at::TensorOptions().dtype(at::kFloat).device(image.device());
    at::Tensor x = (image.permute({2, 0, 1}).unsqueeze(0) -
                    at::tensor({kMean[0], kMean[1], kMean[2]}, options).view({3, 1, 1})) /
                   at::tensor({kStd[0], kStd[1], kStd[2]}, options).view({3, 1, 1});
    return at::constant_pad_nd(x, {0, kImageSize - image.size(1), 0, kImageSize - image.size(0)});
  }
  const at::Tensor in = image.contiguous();
  const uint8_t* src = in.data_ptr<uint8_t>();
  NormalizeAndPad out(in.size(0), in.size(1));
  for (int64_t y = 0; y < in.size(0); ++y) out.set_row(y, src + y * in.size(1) * 3);
  return out.pixels().unsqueeze(0);
}

}  // namespace sd::models
