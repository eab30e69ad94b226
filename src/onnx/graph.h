#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

// An ONNX graph under construction and its ModelProto (onnx.proto's ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto), written without a protobuf library.
// Values are named by strings; every node's outputs get fresh names under the current scope
// (the module path, e.g. "layers.1.blocks.0.attn"), and so do the initializers, which are
// stored once however often the same constant is asked for.
namespace sd::onnx {

constexpr int64_t kOpset = 17;
constexpr size_t kProtobufLimit = size_t(1) << 31;  // bytes of one message

// An attribute of a node: int, float, string, ints, floats, or a tensor.
struct Attr {
  std::string name;
  std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>, at::Tensor>
      value;
};

// A graph input's or output's dimension: a size, or a name for a size known at run time.
using Dim = std::variant<int64_t, std::string>;

// onnx.proto's TensorProto.DataType, for the types used here.
enum class Type { float32 = 1, int8 = 3, int32 = 6, int64 = 7, boolean = 9 };

class Graph {
 public:
  // int8_weights: the matrix products' and convolutions' weights stored as int8 (linear() and
  // conv() of layers.h), see Graph::int8_weights.
  explicit Graph(bool int8_weights = false) : int8_weights_(int8_weights) {}
  bool int8_weights() const { return int8_weights_; }

  // A node of `op_type`; its output names (`outputs` of them).
  std::vector<std::string> node(const std::string& op_type, const std::vector<std::string>& inputs,
                                const std::vector<Attr>& attrs, int outputs);
  // A node with one output.
  std::string op(const std::string& op_type, const std::vector<std::string>& inputs,
                 const std::vector<Attr>& attrs = {});

  // An initializer holding `t` (float32, int64, int32 or int8; copied), named `<scope>.<hint>`
  // unless an equal one exists.
  std::string constant(const at::Tensor& t, const std::string& hint = "const");
  // 1-D int64 and 0-D float constants, the usual operands of Reshape, Slice, Mul, ...
  std::string ints(const std::vector<int64_t>& values);
  std::string scalar(float value);

  void input(const std::string& name, Type type, const std::vector<Dim>& dims);
  // Names the value `value` as the graph output `name` (the node that makes it is renamed).
  void output(const std::string& value, const std::string& name, Type type,
              const std::vector<Dim>& dims);

  // The ModelProto (IR version 8, opset kOpset) of this graph. With `external`, the bytes of
  // each initializer of at least external->threshold bytes go to external->write instead, one
  // after the other, at the offset and length the TensorProto names with external->location
  // (ONNX's external data, onnx/docs/ExternalData.md): the model file must then be read beside
  // a file of that name. sd::Error when the model is over protobuf's 2 GiB.
  struct External {
    std::string location;  // the side file's name, relative to the model's folder
    size_t threshold = 1024;
    std::function<void(std::string_view)> write;  // the side file's bytes, in order
    size_t size = 0;                              // how many went to write
  };
  std::string serialize(const std::string& graph_name, const std::string& doc,
                        External* external = nullptr) const;

  size_t initializer_bytes() const;  // the initializers' values together

  size_t node_count() const { return nodes_.size(); }
  size_t initializer_count() const { return initializers_.size(); }

  // Names created inside a Scope are prefixed with `name` (joined to the enclosing scope by a
  // dot): one Scope per module, named as the module's key prefix.
  class Scope {
   public:
    Scope(Graph& g, const std::string& name);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Graph& g_;
    size_t previous_;
  };

 private:
  struct Node {
    std::string op_type, name;
    std::vector<std::string> inputs, outputs;
    std::vector<Attr> attrs;
  };
  struct ValueInfo {
    std::string name;
    Type type;
    std::vector<Dim> dims;
  };
  std::string fresh(const std::string& base);

  std::vector<Node> nodes_;
  std::vector<at::Tensor> initializers_;
  std::vector<std::string> initializer_names_;
  std::unordered_multimap<size_t, size_t> by_hash_;  // content hash -> initializer
  std::vector<ValueInfo> inputs_, outputs_;
  std::unordered_map<std::string, int> used_;  // name -> times used
  std::string scope_;
  bool int8_weights_;
};

}  // namespace sd::onnx
