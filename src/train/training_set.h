#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "store/reader.h"

// What the trainer reads: the store's teacher embeddings and the images they belong to.
namespace sd::train {

// Every image with a stored embedding, in key order; its pixels come from the store's
// image cache when it holds every image, else from the sources `data` (data::Dataset::open;
// `coco_images`: the images of its COCO files). With `annotations`, the entries come from
// `data` (their annotations, when they have any) in any case. A record the sources cannot give
// (a damaged tar, a bad COCO annotation, ...) is warned about and left out; with `strict` the
// first one is an sd::Error.
struct TrainingSet {
  data::Dataset dataset;
  bool cached_images = false;
};

TrainingSet training_set(const store::Reader& reader, const std::vector<std::string>& data,
                         bool annotations = false, const std::string& coco_images = "",
                         bool strict = false);

// The loader's source of pixels for the set. It also reads each image's stored embedding (its
// checksum checked), so that a damaged store record is skipped by the image reader like a bad
// image (named in its warning, counted by the loader) instead of failing the step that needs it.
data::ImageSource image_source(const TrainingSet& set, const store::Reader& reader);

// The teacher embeddings of `ids` as one float32 Bx256x64x64 batch on `device`.
at::Tensor stack_targets(const store::Reader& reader, const std::vector<std::string>& ids,
                         at::Device device);

}  // namespace sd::train
