#include "util/random.h"

namespace sd::rng {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;     // 2^64 / golden ratio: splitmix64's step
constexpr uint64_t kFnvPrime = 0x100000001B3ull;        // FNV-1a's prime
constexpr uint64_t kValidationSalt = 0x76616c6964ull;   // "valid"
constexpr uint64_t kHoldoutSalt = 0x486f6c644f7574ull;  // "HoldOut"
constexpr uint64_t kClickSalt = 0x436c69636bull;        // "Click"
constexpr uint64_t kPointsSalt = 0x506f696e7473ull;     // "Points"

// A 64-bit number from (key, value), uniform however similar keys and values are.
uint64_t hash(uint64_t key, uint64_t value) { return splitmix64(value ^ splitmix64(key)); }

// Its top 53 bits as a uniform double in [0, 1).
double unit(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

}  // namespace

uint64_t splitmix64(uint64_t x) {
  x += kGolden;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * kFnvPrime;
  return h;
}

uint64_t SplitMix64::next() {
  const uint64_t out = splitmix64(state_);
  state_ += kGolden;
  return out;
}

uint64_t SplitMix64::below(uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do x = next();
  while (x >= limit);
  return x % bound;
}

double subset_draw(uint64_t seed, const std::string& image_id) {
  return unit(hash(seed, fnv1a(image_id)));
}

double validation_draw(uint64_t seed, const std::string& image_id) {
  return subset_draw(seed ^ kValidationSalt, image_id);
}

double holdout_draw(uint64_t seed, const std::string& image_id) {
  return subset_draw(seed ^ kHoldoutSalt, image_id);
}

SplitMix64 shuffle_stream(uint64_t seed, int64_t epoch) {
  SplitMix64 stream(seed * kFnvPrime ^ static_cast<uint64_t>(epoch));
  stream.next();
  return stream;
}

uint64_t prompt_seed(uint64_t seed, int64_t epoch, const std::string& image_id) {
  return hash(seed * kGolden + static_cast<uint64_t>(epoch), fnv1a(image_id)) >> 11;
}

uint64_t click_seed(uint64_t prompt_seed) { return prompt_seed ^ kClickSalt; }

uint64_t mask_point_draw(uint64_t seed, int64_t annotation_id) {
  return hash(seed, static_cast<uint64_t>(annotation_id));
}

SplitMix64 image_points_stream(uint64_t seed, const std::string& image_id) {
  return SplitMix64(hash(seed ^ kPointsSalt, fnv1a(image_id)));
}

std::mt19937_64 fgbg_directions(uint64_t seed, int64_t annotation_id) {
  return std::mt19937_64(seed * kGolden ^ static_cast<uint64_t>(annotation_id));
}

}  // namespace sd::rng
