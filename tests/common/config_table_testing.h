#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>

#include "io/config_table.h"

namespace sd::testing {

// Every key of `table` has help, a check and a default of its type (an enum's default is
// one of its words), and no key is there twice.
template <class T>
void expect_well_formed(const io::ConfigTable<T>& table) {
  std::set<std::string> seen;
  for (const io::Field<T>& f : table.fields()) {
    const io::KeyInfo& k = f.info;
    const nlohmann::json& d = k.default_value;
    EXPECT_TRUE(seen.insert(k.key).second) << k.key << " twice";
    EXPECT_FALSE(k.help.empty()) << k.key;
    EXPECT_TRUE(f.ok && f.read && f.write) << k.key;
    if (k.type == "INT")
      EXPECT_TRUE(d.is_number_integer()) << k.key;
    else if (k.type == "FLOAT")
      EXPECT_TRUE(d.is_number_float()) << k.key;
    else if (k.type == "BOOL")
      EXPECT_TRUE(d.is_boolean()) << k.key;
    else if (k.type == "TEXT")
      EXPECT_TRUE(d.is_string()) << k.key;
    else if (k.type == "LIST")
      EXPECT_TRUE(d.is_array()) << k.key;
    else if (k.type == "INTS")
      EXPECT_TRUE(d.is_array() &&
                  std::all_of(d.begin(), d.end(),
                              [](const nlohmann::json& i) { return i.is_number_integer(); }))
          << k.key;
    else {  // an enum: its words
      ASSERT_TRUE(d.is_string()) << k.key;
      std::stringstream words(k.type);
      bool found = false;
      for (std::string w; std::getline(words, w, '|');) found = found || w == d.get<std::string>();
      EXPECT_TRUE(found) << k.key << ": default " << d << " is not one of " << k.type;
    }
    EXPECT_EQ(table.defaults().at(k.key), d) << k.key;
  }
  EXPECT_EQ(table.defaults().size(), table.fields().size());
}

// A default-constructed T holds the table's defaults: the struct's initialisers never disagree
// with the table (the one the command line and configs show).
template <class T>
void expect_initial_values_are_defaults(const io::ConfigTable<T>& table) {
  static T initialised;  // default-initialised, as T{} (which GCC 12 wrongly warns about)
  const nlohmann::json initial = table.write(initialised);
  for (const io::KeyInfo& k : table.keys())
    EXPECT_EQ(initial.at(k.key), k.default_value) << k.key << ": the initialiser differs";
}

}  // namespace sd::testing
