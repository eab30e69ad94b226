#pragma once
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "util/error.h"

// Options that are one of a few words (a device, a precision, a loss) are enums in the code;
// each enum lists its words once, by specialising WordsOf:
//
//   template <> struct WordsOf<Amp> {
//     static constexpr std::pair<Amp, const char*> list[] = {{Amp::off, "off"}, {Amp::fp16,
//     "fp16"}};
//   };
//
// and configs, flags and messages spell it through the functions below.
namespace sd {

template <class E>
struct WordsOf;

// The word of `value` (every value of the enum is listed).
template <class E>
const char* word(E value) {
  for (const auto& [v, w] : WordsOf<E>::list)
    if (v == value) return w;
  return "?";
}

template <class E>
std::optional<E> from_word(const std::string& text) {
  for (const auto& [v, w] : WordsOf<E>::list)
    if (text == w) return v;
  return std::nullopt;
}

// The words joined by `separator`, or as prose ("auto, cpu or cuda") when it is empty.
template <class E>
std::string word_list(const std::string& separator = "") {
  std::string out;
  const size_t n = std::size(WordsOf<E>::list);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += !separator.empty() ? separator : i + 1 == n ? " or " : ", ";
    out += WordsOf<E>::list[i].second;
  }
  return out;
}

// sd::Error "unknown WHAT 'TEXT' (expected a, b or c)" unless `text` is one of the words.
template <class E>
E parse_word(const std::string& text, const std::string& what) {
  if (std::optional<E> value = from_word<E>(text)) return *value;
  throw Error("unknown " + what + " '" + text + "' (expected " + word_list<E>() + ")");
}

}  // namespace sd
