// sync_batchnorm synchronises TinyViT's batch norms across ranks; another student's (a
// ResNet's) would quietly keep per-rank statistics, so train refuses it, before any collective.
#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "models/image_encoder.h"
#include "train/ranks.h"

namespace sd::train {
namespace {

using testing::contains;
using testing::error_of;

// Rank 0 of two, whose collectives and store no test here may reach.
class UnreachableGroup : public distributed::Group {
 public:
  UnreachableGroup() { world_.size = 2; }
  const distributed::World& world() const override { return world_; }
  at::Device device() const override { return at::kCPU; }
  distributed::Pending all_reduce(at::Tensor, distributed::Reduce) override {
    ADD_FAILURE() << "a collective";
    return {};
  }
  void broadcast(std::vector<at::Tensor>) override { ADD_FAILURE() << "a collective"; }
  void set(const std::string&, const std::string&) override { ADD_FAILURE() << "the store"; }
  std::string get(const std::string&) override {
    ADD_FAILURE() << "the store";
    return "";
  }
  void erase(const std::string&) override { ADD_FAILURE() << "the store"; }

 private:
  distributed::World world_;
};

TEST(SyncBatchnorms, AResNetStudentIsRefusedAndTinyViTsAreSynchronised) {
  UnreachableGroup group;
  auto resnet = models::make_image_encoder(models::encoder_preset("resnet18"));
  EXPECT_PRED2(contains, error_of([&] { sync_batchnorms(*resnet, group); }),
               "sync_batchnorm: only TinyViT's batch norms are synchronised across ranks; this "
               "student's are not (leave sync_batchnorm off)");
  auto vit_t = models::make_image_encoder(models::encoder_preset("vit_t"));
  EXPECT_NO_THROW(sync_batchnorms(*vit_t, group));
  // A student without batch norms (SAM's ViT) has nothing to synchronise.
  auto vit = models::make_image_encoder(models::encoder_config_from_json(
      {{"embed_dim", 32}, {"depth", 2}, {"num_heads", 2}, {"global_attn_indexes", {1}}}, "vit"));
  EXPECT_NO_THROW(sync_batchnorms(*vit, group));
}

}  // namespace
}  // namespace sd::train
