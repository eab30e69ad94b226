#pragma once
#include <cstdint>
#include <random>
#include <string>

// Seeded randomness. Each random decision of the program draws from one of the named streams
// below: a pure function of the user's seed and of what is decided (an image id, an annotation
// id, an epoch), so that a seed gives the same numbers on every run, machine, thread count and
// resume. Each stream mixes the seed its own way (its salt), so that streams are independent.
namespace sd::rng {

// splitmix64's output for the state x (Steele, Lea & Flood 2014): a strong 64-bit mix.
uint64_t splitmix64(uint64_t x);
// The 64-bit FNV-1a hash of a string.
uint64_t fnv1a(const std::string& s);

// A splitmix64 sequence: small, fully specified, the same on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next();
  uint64_t below(uint64_t bound);  // uniform in [0, bound), without modulo bias

 private:
  uint64_t state_;
};

// Whether an image is in a `--fraction` subset: its uniform [0, 1) draw. The draw of an id only
// depends on (seed, id), so a larger fraction keeps a superset.
double subset_draw(uint64_t seed, const std::string& image_id);
// The same for the validation split (`--val-fraction`), independent of the subset's draw.
double validation_draw(uint64_t seed, const std::string& image_id);
// The same for the images fine-tuning holds out.
double holdout_draw(uint64_t seed, const std::string& image_id);

// The sequence that shuffles the images of an epoch.
SplitMix64 shuffle_stream(uint64_t seed, int64_t epoch);

// The seed of an image's training prompts in an epoch (which annotations, their fgbg points).
uint64_t prompt_seed(uint64_t seed, int64_t epoch, const std::string& image_id);
// The seed of the refinement clicks on those prompts, from the image's prompt seed.
uint64_t click_seed(uint64_t prompt_seed);

// Which pixel of an annotation's mask is its random point: the number to take modulo the area.
uint64_t mask_point_draw(uint64_t seed, int64_t annotation_id);
// The points of an image's `random@K` prompts: x and y of each drawn in turn from this
// sequence (uniform in [0, 1), times the image's width and height).
SplitMix64 image_points_stream(uint64_t seed, const std::string& image_id);
// The directions in which fgbg looks for its background point, for an annotation. The
// sequence of std::mt19937_64 is fixed by the C++ standard.
std::mt19937_64 fgbg_directions(uint64_t seed, int64_t annotation_id);

}  // namespace sd::rng
