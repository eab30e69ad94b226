#include "io/config_table.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "common/config_table_testing.h"
#include "common/fixtures.h"
#include "util/error.h"

namespace sd {
namespace {
enum class Colour { red, light_green };
}  // namespace

template <>
struct WordsOf<Colour> {
  static constexpr std::pair<Colour, const char*> list[] = {{Colour::red, "red"},
                                                            {Colour::light_green, "light-green"}};
};

namespace io {
namespace {

using nlohmann::json;
using testing::contains;
using testing::error_of;

struct Toy {
  int64_t count = 0;
  double rate = 0, limit = 0;
  bool on = false;
  std::string name;
  std::vector<std::string> items;
  Colour colour = Colour::red;
};

const ConfigTable<Toy>& toy_table() {
  static const ConfigTable<Toy> table({
      field("count", &Toy::count, 3, positive(), "how many"),
      field("rate", &Toy::rate, 0.5, non_negative(), "how fast"),
      field("limit", &Toy::limit, 1.0,
            Check{[](double v, const Toy& t) { return v >= t.rate; }, "must be >= rate"},
            "at most"),
      field("on", &Toy::on, false, any_value(), "whether"),
      field("name", &Toy::name, "toy",
            Check{[](const std::string& v, const Toy&) {
                    if (v == "bad") throw Error("'bad' is a bad name");
                    return true;
                  },
                  ""},
            "what"),
      field("items", &Toy::items, {"a"}, any_value(), "which"),
      field("colour", &Toy::colour, Colour::light_green, any_value(), "of what colour"),
  });
  return table;
}

TEST(ConfigTable, DefaultsTypesAndOrderComeFromTheTable) {
  testing::expect_well_formed(toy_table());
  EXPECT_EQ(toy_table().defaults(), (json{{"count", 3},
                                          {"rate", 0.5},
                                          {"limit", 1.0},
                                          {"on", false},
                                          {"name", "toy"},
                                          {"items", {"a"}},
                                          {"colour", "light-green"}}));
  std::vector<std::string> keys, types;
  for (const KeyInfo& k : toy_table().keys()) {
    keys.push_back(k.key);
    types.push_back(k.type);
  }
  EXPECT_EQ(keys,
            (std::vector<std::string>{"count", "rate", "limit", "on", "name", "items", "colour"}));
  EXPECT_EQ(types, (std::vector<std::string>{"INT", "FLOAT", "FLOAT", "BOOL", "TEXT", "LIST",
                                             "red|light-green"}));
  EXPECT_TRUE(toy_table().defaults().at("rate").is_number_float());
}

TEST(ConfigTable, ReadsTheGivenKeysOverTheDefaults) {
  const Toy t = toy_table().read({{"count", 7}, {"colour", "red"}, {"rate", 1}}, "toy.json");
  EXPECT_EQ(t.count, 7);
  EXPECT_EQ(t.rate, 1.0);
  EXPECT_EQ(t.limit, 1.0);
  EXPECT_EQ(t.name, "toy");
  EXPECT_EQ(t.items, std::vector<std::string>{"a"});
  EXPECT_EQ(t.colour, Colour::red);
}

TEST(ConfigTable, AnUnknownKeyAndAWrongTypeAreNamed) {
  auto read = [](const json& given) {
    return error_of([&] { toy_table().read(given, "toy.json"); });
  };
  EXPECT_PRED2(contains, read({{"cuont", 1}}), "toy.json: unknown key 'cuont'");
  EXPECT_PRED2(contains, read({{"name", 1}}), "toy.json: key 'name' must be a string, got 1");
  EXPECT_PRED2(contains, read({{"count", 2.5}}), "key 'count' must be an integer, got 2.5");
  EXPECT_PRED2(contains, read({{"count", "2"}}), "an integer");
  EXPECT_PRED2(contains, read({{"colour", 1}}), "key 'colour' must be a string, got 1");
  EXPECT_PRED2(contains, read({{"items", "a"}}), "key 'items' must be a list, got \"a\"");
}

TEST(ConfigTable, ChecksNameTheKeyTheValueAndTheRule) {
  auto read = [](const json& given) {
    return error_of([&] { toy_table().read(given, "toy.json"); });
  };
  EXPECT_PRED2(contains, read({{"count", 0}}), "config key 'count' = 0: must be > 0");
  EXPECT_PRED2(contains, read({{"rate", 2.0}}), "config key 'limit' = 1.0: must be >= rate");
  EXPECT_PRED2(contains, read({{"name", "bad"}}),
               "config key 'name' = \"bad\": 'bad' is a bad name");
}

TEST(ConfigTable, AnEnumOutsideItsWordsIsRefusedListingThem) {
  EXPECT_PRED2(contains, error_of([] {
                 toy_table().read({{"colour", "green"}}, "toy.json");
               }),
               "config key 'colour' = \"green\": must be red or light-green");
  EXPECT_EQ(word(Colour::light_green), std::string("light-green"));
  EXPECT_EQ(from_word<Colour>("red"), Colour::red);
  EXPECT_FALSE(from_word<Colour>("Red"));
  EXPECT_PRED2(contains, error_of([] { parse_word<Colour>("blue", "colour"); }),
               "unknown colour 'blue' (expected red or light-green)");
}

TEST(ConfigTable, AConfigWrittenThenReadIsTheSame) {
  const json given = {{"count", 9},      {"rate", 0.25},        {"limit", 0.75},  {"on", true},
                      {"name", "other"}, {"items", {"x", "y"}}, {"colour", "red"}};
  const Toy t = toy_table().read(given, "toy.json");
  const json written = toy_table().write(t);
  EXPECT_EQ(written, given);
  const Toy again = toy_table().read(written, "config.json");
  EXPECT_EQ(again.count, t.count);
  EXPECT_EQ(again.rate, t.rate);
  EXPECT_EQ(again.limit, t.limit);
  EXPECT_EQ(again.on, t.on);
  EXPECT_EQ(again.name, t.name);
  EXPECT_EQ(again.items, t.items);
  EXPECT_EQ(again.colour, t.colour);
}

struct Outer {
  Toy toy;
  int64_t extra = 0;
};

TEST(ConfigTable, APartsKeysServeALargerConfig) {
  const ConfigTable<Outer> outer =
      toy_table()
          .without({"on"})
          .as_part_of(&Outer::toy)
          .with_defaults({{"count", 5}, {"limit", 2}})
          .with_help({{"name", "the outer name"}})
          .plus({field("extra", &Outer::extra, 1, non_negative(), "more")});
  testing::expect_well_formed(outer);
  EXPECT_FALSE(outer.defaults().contains("on"));
  EXPECT_EQ(outer.defaults().at("count"), 5);
  EXPECT_TRUE(outer.defaults().at("limit").is_number_float());  // 2 given, a FLOAT key
  EXPECT_EQ(outer.keys().at(3).help, "the outer name");
  EXPECT_EQ(outer.keys().back().key, "extra");

  const Outer o = outer.read({{"extra", 4}, {"colour", "red"}}, "outer.json");
  EXPECT_EQ(o.toy.count, 5);
  EXPECT_EQ(o.toy.colour, Colour::red);
  EXPECT_EQ(o.extra, 4);
  EXPECT_EQ(outer.write(o).at("extra"), 4);
  EXPECT_PRED2(contains, error_of([&] {
                 outer.read({{"rate", 3.0}}, "outer.json");
               }),
               "config key 'limit'");  // the part's checks still apply
  EXPECT_PRED2(contains, error_of([&] {
                 outer.read({{"on", true}}, "outer.json");
               }),
               "unknown key 'on'");
  EXPECT_THROW(toy_table().with_help({{"nothing", "x"}}), std::logic_error);
  EXPECT_THROW(toy_table().with_defaults({{"count", "many"}}), Error);
}

struct Stages {
  std::vector<int> sizes = {1, 2};
  std::vector<int64_t> offsets = {0};
  std::vector<std::string> names = {"a"};
};

const ConfigTable<Stages>& stages_table() {
  static const ConfigTable<Stages> table = agreeing(ConfigTable<Stages>({
      field("sizes", &Stages::sizes, {1, 2}, each(positive(), 2, "sizes"), "two sizes"),
      field("offsets", &Stages::offsets, {0}, each(non_negative()), "any number of offsets"),
      field("names", &Stages::names, {"a"}, any_value(), "names"),
  }));
  return table;
}

TEST(ConfigTable, ListsOfIntegersAreReadWrittenAndCheckedItemByItem) {
  testing::expect_well_formed(stages_table());
  std::vector<std::string> types;
  for (const KeyInfo& k : stages_table().keys()) types.push_back(k.type);
  EXPECT_EQ(types, (std::vector<std::string>{"INTS", "INTS", "LIST"}));
  const json given = {{"sizes", {3, 4}}, {"offsets", {5, 6, 7}}, {"names", {"x"}}};
  const Stages s = stages_table().read(given, "s.json");
  EXPECT_EQ(s.sizes, (std::vector<int>{3, 4}));
  EXPECT_EQ(s.offsets, (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(stages_table().write(s), given);

  auto read = [](const json& given) {
    return error_of([&] { stages_table().read(given, "s.json"); });
  };
  EXPECT_PRED2(contains, read({{"sizes", {1, 2.5}}}),
               "config key 'sizes' = [1,2.5]: must list integers");
  EXPECT_PRED2(contains, read({{"sizes", 3}}), "s.json: key 'sizes' must be a list, got 3");
  EXPECT_PRED2(contains, read({{"sizes", {1}}}), "config key 'sizes' = [1]: must list 2 sizes");
  EXPECT_PRED2(contains, read({{"sizes", {1, 0}}}),
               "config key 'sizes' = [1,0]: each item must be > 0");
  EXPECT_PRED2(contains, read({{"offsets", {0, -1}}}), "each item must be >= 0");
  EXPECT_PRED2(contains, read({{"names", {"a", 1}}}),
               "config key 'names' = [\"a\",1]: must list strings");
}

struct Disagreeing {
  int64_t count = 1;
  std::string name = "x";
};

TEST(ConfigTable, AgreeingRefusesInitialisersThatDifferFromTheDefaults) {
  const ConfigTable<Disagreeing> table({field("count", &Disagreeing::count, 2, positive(), "c"),
                                        field("name", &Disagreeing::name, "x", any_value(), "n")});
  try {
    agreeing(table);
    ADD_FAILURE() << "a table whose default differs from the initialiser was accepted";
  } catch (const std::logic_error& e) {
    EXPECT_PRED2(contains, e.what(),
                 "initialisers differ from the table's defaults: count (1 vs 2)");
    EXPECT_FALSE(contains(e.what(), "name"));
  }
  EXPECT_NO_THROW(agreeing(table.with_defaults({{"count", 1}})));
}

}  // namespace
}  // namespace io
}  // namespace sd
