#pragma once
#include <any>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/config_table.h"
#include "util/error.h"
#include "util/text.h"

// The registry of image-encoder families (SAM's ViT, MobileSAM's TinyViT, ...). A family is
// one place in models/ (its module, its config struct and its EncoderFamily) plus one line
// in encoder_family.cpp, or a register_encoder_family call (tests, programs built on the
// library); everything else asks the registry.
namespace sd::models {

class ImageEncoder;
class EncoderFamily;

// The architecture of an image encoder: its family and that family's own config (ViTConfig,
// TinyViTConfig, ...). A family's config struct names its family with a static
// `family()`, so that it converts to an EncoderConfig.
class EncoderConfig {
 public:
  template <class C, class = decltype(C::family())>
  EncoderConfig(C config)  // NOLINT(google-explicit-constructor): a ViTConfig is an EncoderConfig
      : family_(&C::family()), value_(std::move(config)) {}

  const EncoderFamily& family() const { return *family_; }
  // The family's config; sd::Error when it is another family's.
  template <class C>
  const C& as() const {
    if (const C* c = std::any_cast<C>(&value_)) return *c;
    throw Error("an encoder config of the wrong family: " + family_name());
  }
  template <class C>
  const C* get_if() const {
    return std::any_cast<C>(&value_);
  }

 private:
  std::string family_name() const;
  const EncoderFamily* family_;
  std::any value_;
};

// The key names and shapes of a state dict, as a family's weight detection reads them.
class WeightShapes {
 public:
  explicit WeightShapes(std::map<std::string, std::vector<int64_t>> shapes)
      : shapes_(std::move(shapes)) {}
  // The shape of `key` when it is there with `dims` dimensions, else null.
  const std::vector<int64_t>* shape(const std::string& key, size_t dims) const;
  bool has(const std::string& key) const { return shapes_.count(key) > 0; }
  // How many distinct N appear in keys "<prefix>N.<...>": the length of a module list.
  int64_t count_indices(const std::string& prefix) const;

 private:
  std::map<std::string, std::vector<int64_t>> shapes_;
};

// A config's ratio shown by weights: hidden / width, nudged where rounding would make
// int(width * ratio) miss `hidden`.
double shown_ratio(int64_t hidden, int64_t width);

// The number after `prefix` in a parameter name ("layers.2.blocks.3.x", "layers." -> 2); -1
// when the name does not start with `prefix`.
int module_index(const std::string& name, const std::string& prefix);

// One encoder family.
class EncoderFamily {
 public:
  virtual ~EncoderFamily() = default;

  // Its name in summaries and messages: "ViT", "TinyViT".
  virtual std::string name() const = 0;
  // The key that only this family's JSON configs have ("embed_dim", "embed_dims"): a JSON
  // config is of the family whose key it holds.
  virtual std::string key() const = 0;
  // Its presets ("vit_b", ...) in the order help texts list them.
  virtual std::vector<std::pair<std::string, EncoderConfig>> presets() const = 0;

  // Its config table: the config of `given` (the keys of to_json; the others keep their
  // defaults), checked; sd::Error naming `source` and the key otherwise.
  virtual EncoderConfig from_json(const nlohmann::json& given, const std::string& source) const = 0;
  // Every key of the config with its value.
  virtual nlohmann::json to_json(const EncoderConfig& config) const = 0;
  // The side of the square images it takes (SAM: 1024).
  virtual int64_t img_size(const EncoderConfig& config) const = 0;

  // The image encoder, initialised as the Python reference initialises it.
  virtual std::shared_ptr<ImageEncoder> build(const EncoderConfig& config) const = 0;

  // What the shapes of weights show of an encoder of this family whose keys start with
  // `prefix`: the config keys the shapes determine, with their values. A key that is absent,
  // or a list element that is null, is one no weight determines (TinyViT's first stage is
  // convolutional: its num_heads and window_sizes entries are in no weight); null when the
  // keys hold no encoder of this family.
  virtual nlohmann::json observe(const WeightShapes& shapes, const std::string& prefix) const = 0;
  // Why a config must be given for weights that show `observed` ("" when they show all
  // that matters): a value no weight determines and no default can stand for, e.g.
  // "its attention heads (no relative position tables)".
  virtual std::string unshown(const nlohmann::json& observed) const = 0;
  // For a key whose value is a ratio of widths (mlp_ratio): the width it multiplies in the
  // observed sizes, which decides when two ratios are the same (int(width * ratio)); 0 for
  // other keys.
  virtual int64_t ratio_width(const std::string& key, const nlohmann::json& observed) const {
    (void)key, (void)observed;
    return 0;
  }
  // The keys `samdistill checkpoint` shows of observed sizes, e.g. {"embed_dim", "depth"}.
  virtual std::vector<std::string> summary_keys() const = 0;

  // Layer-wise learning-rate decay: the index of the block a parameter (named as in the
  // encoder's state dict) belongs to, counting from the input; -1 after the blocks.
  virtual int block_of(const std::string& parameter, const EncoderConfig& config) const = 0;
  // How many blocks block_of counts.
  virtual int blocks(const EncoderConfig& config) const = 0;
};

// An EncoderFamily whose config struct C declares its keys once, as a config table
// (`static const io::ConfigTable<C>& table()`: each key with its member, default, check and
// help), and whose encoder module `Encoder` is made from a C: configs are read, checked and
// written by the table.
template <class C, class Encoder>
class TableFamily : public EncoderFamily {
 public:
  std::shared_ptr<ImageEncoder> build(const EncoderConfig& config) const override {
    return std::make_shared<Encoder>(config.as<C>());
  }
  EncoderConfig from_json(const nlohmann::json& given, const std::string& source) const override {
    try {
      return C::table().read(given, source);
    } catch (const io::KeyError& e) {  // a check's "config key 'K' = V: RULE" names no source
      if (starts_with(e.what(), source + ": ")) throw;
      throw io::KeyError(e.key(), source + ": " + e.what());
    }
  }
  nlohmann::json to_json(const EncoderConfig& config) const override {
    return C::table().write(config.as<C>());
  }
};

// Adds a family (an object that lives as long as the program, such as a function's static);
// sd::Error when its name, its key or one of its presets is taken. Not thread-safe: register
// before the families are used.
void register_encoder_family(const EncoderFamily& family);
// The registered families: ViT, TinyViT, ResNet, then those registered, in that order.
std::vector<const EncoderFamily*> encoder_families();
// The family named `name`; sd::Error listing the families otherwise.
const EncoderFamily& encoder_family(const std::string& name);
// "ViT, TinyViT": the family names for help texts and messages.
std::string encoder_families_in_words();

}  // namespace sd::models
