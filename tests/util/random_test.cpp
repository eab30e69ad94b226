#include "util/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

// Every stream is pinned to the numbers it gave when it was written: a change of any stream
// changes which images a seed selects, their order, and the prompts; runs would no longer repeat.
namespace sd::rng {
namespace {

TEST(Random, Primitives) {
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafull);  // the published first output for seed 0
  EXPECT_EQ(splitmix64(1), 0x910a2dec89025cc1ull);
  EXPECT_EQ(fnv1a(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a("sa_1"), 0x08defe18bf0f0999ull);
  SplitMix64 s(0);
  EXPECT_EQ(s.next(), 0xe220a8397b1dcdafull);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(s.below(7), 7u);
}

TEST(Random, ImageDraws) {
  EXPECT_EQ(subset_draw(0, "sa_1"), 0.71853817657430885);
  EXPECT_EQ(subset_draw(7, "sa_100003"), 0.98978015708977418);
  EXPECT_EQ(validation_draw(0, "sa_1"), 0.2900059091745949);
  EXPECT_EQ(validation_draw(7, "sa_100003"), 0.94027587563819726);
  EXPECT_EQ(holdout_draw(0, "sa_1"), 0.35584606152137954);
  EXPECT_EQ(holdout_draw(7, "sa_100003"), 0.0091348535648205775);
}

// The permutation data::epoch_order makes with the stream (Fisher-Yates from the end).
std::vector<int64_t> shuffled(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 stream = shuffle_stream(seed, epoch);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[stream.below(i)]);
  return order;
}

TEST(Random, Shuffle) {
  EXPECT_EQ(shuffled(10, 0, 0), (std::vector<int64_t>{8, 7, 6, 5, 3, 9, 2, 4, 1, 0}));
  EXPECT_EQ(shuffled(10, 5, 1), (std::vector<int64_t>{4, 8, 2, 9, 0, 7, 1, 5, 6, 3}));
  EXPECT_EQ(shuffled(7, 123, 4), (std::vector<int64_t>{3, 1, 6, 5, 2, 4, 0}));
}

TEST(Random, Prompts) {
  EXPECT_EQ(prompt_seed(0, 0, "sa_1"), 6472016528543066ull);
  EXPECT_EQ(prompt_seed(3, 2, "sa_100003"), 3828453907019428ull);
  EXPECT_EQ(click_seed(3828453907019428ull), 3828181916440015ull);
  EXPECT_EQ(mask_point_draw(0, 1), 627405149472732430ull);
  EXPECT_EQ(mask_point_draw(7, 42), 7974615062405353404ull);
  std::mt19937_64 a = fgbg_directions(0, 1), b = fgbg_directions(7, 3);
  EXPECT_EQ(a(), 0x2245bd5fbb686f68ull);
  EXPECT_EQ(a(), 0x22eb92502318fa4eull);
  EXPECT_EQ(b(), 0x0ca53090606d1824ull);
  EXPECT_EQ(b(), 0xab6c3078c829fd81ull);
}

}  // namespace
}  // namespace sd::rng
