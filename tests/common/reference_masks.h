// Our automatic masks against the Python reference's (tests/segment/fixtures, made by
// tests/segment/make_amg_fixtures.py), as far as a faithful port can agree with them.
//
// Our logits agree with the reference's within 1e-4 of their largest magnitude (the decoder's
// relative tolerance, tests/models/decoder_ref_test.cpp), not to the last bit; nor do PyTorch
// 1.13's and 2.6's. So each reference mask lists its undecided pixels, those whose logit lies
// that close to the threshold, and they may fall either way; every other pixel must be the
// reference's. Likewise masks whose predicted IoUs (the order's key) lie within kIouTolerance of
// each other may come in either order.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/rle.h"

namespace sd::testing {

inline constexpr double kUndecidedTolerance = 1e-4;
inline constexpr double kIouTolerance = 1e-4;

// Where a mask differs on undecided pixels, it still agrees with the reference's on this share
// (the fixtures README's tolerance for thresholded masks).
inline constexpr double kMaskAgreement = 0.999;

// Reference mask i in ours: `ours` is the index of the mask that agrees with it, `identical`
// whether it agrees on the undecided pixels too.
struct MaskMatch {
  size_t ours = 0;
  bool identical = false;
};

// SAM's box of a mask (XYXY, the last row and column inside), as the generator's records give it
// in XYWH: {x0, y0, x1 - x0, y1 - y0}; zeros for an empty mask.
inline std::vector<int64_t> sam_bbox(const data::Rle& rle) {
  const at::Tensor mask = data::rle_decode(rle);
  const at::Tensor rows = mask.any(1).nonzero(), cols = mask.any(0).nonzero();
  if (rows.numel() == 0) return {0, 0, 0, 0};
  const int64_t x0 = cols.min().item<int64_t>(), x1 = cols.max().item<int64_t>();
  const int64_t y0 = rows.min().item<int64_t>(), y1 = rows.max().item<int64_t>();
  return {x0, y0, x1 - x0, y1 - y0};
}

// Pixels of `ours` that differ from reference record `r` where its logit is decided.
inline int64_t decided_differences(const nlohmann::json& r, const data::Rle& ours,
                                   const std::string& what) {
  const int h = r["size"][0], w = r["size"][1];
  const at::Tensor ref =
      data::rle_decode(data::rle_from_string(r["counts"].get<std::string>(), h, w, what));
  const at::Tensor undecided =
      data::rle_decode(data::rle_from_string(r["undecided"].get<std::string>(), h, w, what));
  return ref.ne(data::rle_decode(ours)).logical_and(undecided.logical_not()).sum().item<int64_t>();
}

// Matches each of the `reference` records (a fixture case's "masks") with one of `ours`, in the
// same order but for ties; fails the test where a reference mask has no match.
inline std::vector<MaskMatch> match_reference_masks(const nlohmann::json& reference,
                                                    const std::vector<data::Rle>& ours,
                                                    const std::string& what) {
  std::vector<MaskMatch> matches;
  if (reference.size() != ours.size()) {
    ADD_FAILURE() << what << ": " << ours.size() << " masks, the reference " << reference.size();
    return matches;
  }
  int64_t undecided_flips = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const nlohmann::json& r = reference[i];
    const double score = r["predicted_iou"];
    bool found = false;
    // i itself first, then its ties.
    for (size_t k = 0; k < ours.size() && !found; ++k) {
      const size_t j = k == 0 ? i : k - (k <= i);
      if (j != i && std::abs(reference[j]["predicted_iou"].get<double>() - score) > kIouTolerance)
        continue;
      if (decided_differences(r, ours[j], what) != 0) continue;
      const bool identical = data::rle_to_string(ours[j]) == r["counts"];
      if (!identical) {
        undecided_flips += std::abs(data::rle_area(ours[j]) - r["area"].get<int64_t>());
        const at::Tensor a = data::rle_decode(ours[j]).to(at::kBool);
        const at::Tensor b =
            data::rle_decode(data::rle_from_string(r["counts"].get<std::string>(), r["size"][0],
                                                   r["size"][1], what))
                .to(at::kBool);
        const double iou = double((a & b).sum().item<int64_t>()) /
                           double(std::max<int64_t>((a | b).sum().item<int64_t>(), 1));
        EXPECT_GE(iou, kMaskAgreement) << what << ": reference mask " << i;
      }
      matches.push_back({j, identical});
      found = true;
    }
    if (!found)
      ADD_FAILURE() << what << ": reference mask " << i << " (predicted IoU " << score
                    << ") differs from ours, and from its ties', on decided pixels";
  }
  std::cout << what << ": " << matches.size() << " of " << reference.size()
            << " masks agree with the reference on every decided pixel; "
            << std::count_if(matches.begin(), matches.end(), [](auto m) { return !m.identical; })
            << " differ on undecided ones (area off by " << undecided_flips << " in all)\n";
  return matches;
}

}  // namespace sd::testing
