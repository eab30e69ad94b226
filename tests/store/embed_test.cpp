#include "store/embed.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace sd::store {
namespace {

TEST(Embed, ParseShard) {
  EmbedOptions o;
  parse_shard("2/8", o);
  EXPECT_EQ(o.shard_index, 2);
  EXPECT_EQ(o.shard_count, 8);
  parse_shard("0/1", o);
  EXPECT_EQ(o.shard_count, 1);
  for (const char* bad : {"8/8", "1", "/2", "1/", "-1/2", "1/0", "a/2", "1/2/3", "1 /2"})
    EXPECT_THROW(parse_shard(bad, o), Error) << bad;
}

}  // namespace
}  // namespace sd::store
