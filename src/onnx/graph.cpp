#include "onnx/graph.h"

#include <ATen/ATen.h>

#include <functional>
#include <string_view>

#include "util/error.h"
#include "util/protobuf.h"

namespace sd::onnx {
namespace {

using namespace protobuf;

// Field numbers of onnx.proto.
enum ModelField { kIrVersion = 1, kProducerName = 2, kModelDoc = 6, kGraph = 7, kOpsetImport = 8 };
enum OpsetField { kOpsetVersion = 2 };
enum GraphField { kNode = 1, kGraphName = 2, kInitializer = 5, kInput = 11, kOutput = 12 };
enum NodeField { kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kOpType = 4, kAttribute = 5 };
enum AttributeField {
  kAttrName = 1,
  kAttrFloat = 2,
  kAttrInt = 3,
  kAttrString = 4,
  kAttrTensor = 5,
  kAttrFloats = 7,
  kAttrInts = 8,
  kAttrType = 20
};
enum AttributeType { kFloat = 1, kInt = 2, kString = 3, kTensor = 4, kFloats = 6, kInts = 7 };
enum TensorField {
  kDims = 1,
  kDataType = 2,
  kTensorName = 8,
  kRawData = 9,
  kExternalData = 13,
  kDataLocation = 14
};
enum StringStringEntryField { kKey = 1, kValue = 2 };
constexpr int64_t kExternal = 1;  // TensorProto.DataLocation.EXTERNAL
enum ValueInfoField { kValueName = 1, kValueType = 2 };
enum TypeField { kTensorType = 1 };
enum TensorTypeField { kElemType = 1, kShape = 2 };
enum DimField { kDimValue = 1, kDimParam = 2 };
constexpr int64_t kIrVersionOfOpset17 = 8;

Type type_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return Type::float32;
    case at::kLong:
      return Type::int64;
    case at::kInt:
      return Type::int32;
    case at::kChar:
      return Type::int8;
    case at::kBool:
      return Type::boolean;
    default:
      throw Error(std::string("ONNX export: no initializer of type ") +
                  c10::toString(t.scalar_type()));
  }
}

std::string_view bytes_of(const at::Tensor& t) {
  return {static_cast<const char*>(t.data_ptr()), size_t(t.numel() * t.element_size())};
}

void put_entry(std::string& out, const std::string& key, const std::string& value) {
  std::string entry;
  put_bytes(entry, kKey, key);
  put_bytes(entry, kValue, value);
  put_bytes(out, kExternalData, entry);
}

// The values are little-endian, as this machine's: raw_data, or with `external` (when they are
// not smaller than its threshold) given to external->write and named by location, offset
// and length.
std::string tensor_proto(const at::Tensor& t, const std::string& name,
                         Graph::External* external = nullptr) {
  std::string out;
  for (int64_t d : t.sizes()) put_int(out, kDims, d);
  put_int(out, kDataType, int64_t(type_of(t)));
  put_bytes(out, kTensorName, name);
  const std::string_view bytes = bytes_of(t);
  if (!external || bytes.size() < external->threshold) {
    put_bytes(out, kRawData, bytes);
    return out;
  }
  put_entry(out, "location", external->location);
  put_entry(out, "offset", std::to_string(external->size));
  put_entry(out, "length", std::to_string(bytes.size()));
  put_int(out, kDataLocation, kExternal);
  external->write(bytes);
  external->size += bytes.size();
  return out;
}

std::string attribute_proto(const Attr& a) {
  std::string out;
  put_bytes(out, kAttrName, a.name);
  if (auto* i = std::get_if<int64_t>(&a.value)) {
    put_int(out, kAttrInt, *i);
    put_int(out, kAttrType, kInt);
  } else if (auto* f = std::get_if<float>(&a.value)) {
    put_fixed(out, kAttrFloat, *f);
    put_int(out, kAttrType, kFloat);
  } else if (auto* s = std::get_if<std::string>(&a.value)) {
    put_bytes(out, kAttrString, *s);
    put_int(out, kAttrType, kString);
  } else if (auto* is = std::get_if<std::vector<int64_t>>(&a.value)) {
    for (int64_t v : *is) put_int(out, kAttrInts, v);
    put_int(out, kAttrType, kInts);
  } else if (auto* fs = std::get_if<std::vector<float>>(&a.value)) {
    for (float v : *fs) put_fixed(out, kAttrFloats, v);
    put_int(out, kAttrType, kFloats);
  } else {
    put_bytes(out, kAttrTensor, tensor_proto(std::get<at::Tensor>(a.value), ""));
    put_int(out, kAttrType, kTensor);
  }
  return out;
}

std::string value_info_proto(const std::string& name, Type type, const std::vector<Dim>& dims) {
  std::string shape;
  for (const Dim& d : dims) {
    std::string dim;
    if (auto* size = std::get_if<int64_t>(&d))
      put_int(dim, kDimValue, *size);
    else
      put_bytes(dim, kDimParam, std::get<std::string>(d));
    put_bytes(shape, 1, dim);  // TensorShapeProto.dim
  }
  std::string tensor_type;
  put_int(tensor_type, kElemType, int64_t(type));
  put_bytes(tensor_type, kShape, shape);
  std::string type_proto;
  put_bytes(type_proto, kTensorType, tensor_type);
  std::string out;
  put_bytes(out, kValueName, name);
  put_bytes(out, kValueType, type_proto);
  return out;
}

}  // namespace

Graph::Scope::Scope(Graph& g, const std::string& name) : g_(g), previous_(g.scope_.size()) {
  g.scope_ += (g.scope_.empty() ? "" : ".") + name;
}

Graph::Scope::~Scope() { g_.scope_.resize(previous_); }

std::string Graph::fresh(const std::string& base) {
  const std::string name = scope_.empty() ? base : scope_ + "." + base;
  const int n = used_[name]++;
  return n == 0 ? name : name + "_" + std::to_string(n);
}

std::vector<std::string> Graph::node(const std::string& op_type,
                                     const std::vector<std::string>& inputs,
                                     const std::vector<Attr>& attrs, int outputs) {
  Node n{op_type, fresh(op_type), inputs, {}, attrs};
  for (int i = 0; i < outputs; ++i) n.outputs.push_back(n.name + ":" + std::to_string(i));
  nodes_.push_back(std::move(n));
  return nodes_.back().outputs;
}

std::string Graph::op(const std::string& op_type, const std::vector<std::string>& inputs,
                      const std::vector<Attr>& attrs) {
  return node(op_type, inputs, attrs, 1)[0];
}

std::string Graph::constant(const at::Tensor& t, const std::string& hint) {
  const at::Tensor value = t.detach().cpu().contiguous().clone();
  type_of(value);  // refuses other types now rather than when writing
  const size_t hash = std::hash<std::string_view>()(bytes_of(value));
  auto [first, last] = by_hash_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    const at::Tensor& other = initializers_[it->second];
    if (other.scalar_type() == value.scalar_type() && other.sizes() == value.sizes() &&
        bytes_of(other) == bytes_of(value))
      return initializer_names_[it->second];
  }
  by_hash_.emplace(hash, initializers_.size());
  initializers_.push_back(value);
  initializer_names_.push_back(fresh(hint));
  return initializer_names_.back();
}

std::string Graph::ints(const std::vector<int64_t>& values) {
  return constant(at::tensor(values, at::kLong), "ints");
}

std::string Graph::scalar(float value) { return constant(at::scalar_tensor(value), "scalar"); }

void Graph::input(const std::string& name, Type type, const std::vector<Dim>& dims) {
  inputs_.push_back({name, type, dims});
}

void Graph::output(const std::string& value, const std::string& name, Type type,
                   const std::vector<Dim>& dims) {
  for (Node& n : nodes_) {
    for (std::string& out : n.outputs)
      if (out == value) out = name;
    for (std::string& in : n.inputs)
      if (in == value) in = name;
  }
  outputs_.push_back({name, type, dims});
}

size_t Graph::initializer_bytes() const {
  size_t n = 0;
  for (const at::Tensor& t : initializers_) n += bytes_of(t).size();
  return n;
}

std::string Graph::serialize(const std::string& graph_name, const std::string& doc,
                             External* external) const {
  std::string graph;
  for (const Node& n : nodes_) {
    std::string node;
    for (const std::string& in : n.inputs) put_bytes(node, kNodeInput, in);
    for (const std::string& out : n.outputs) put_bytes(node, kNodeOutput, out);
    put_bytes(node, kNodeName, n.name);
    put_bytes(node, kOpType, n.op_type);
    for (const Attr& a : n.attrs) put_bytes(node, kAttribute, attribute_proto(a));
    put_bytes(graph, kNode, node);
  }
  put_bytes(graph, kGraphName, graph_name);
  for (size_t i = 0; i < initializers_.size(); ++i)
    put_bytes(graph, kInitializer, tensor_proto(initializers_[i], initializer_names_[i], external));
  for (const ValueInfo& v : inputs_)
    put_bytes(graph, kInput, value_info_proto(v.name, v.type, v.dims));
  for (const ValueInfo& v : outputs_)
    put_bytes(graph, kOutput, value_info_proto(v.name, v.type, v.dims));

  std::string model;
  put_int(model, kIrVersion, kIrVersionOfOpset17);
  put_bytes(model, kProducerName, "samdistill");
  put_bytes(model, kModelDoc, doc);
  put_bytes(model, kGraph, graph);
  std::string opset;
  put_int(opset, kOpsetVersion, kOpset);  // the default domain: empty, not written
  put_bytes(model, kOpsetImport, opset);
  // Protobuf's limit for one message; larger models need their initializers outside.
  if (model.size() >= kProtobufLimit)
    throw Error("ONNX export: the model is " + std::to_string(model.size() >> 20) +
                " MiB, over protobuf's 2 GiB limit for one file");
  return model;
}

}  // namespace sd::onnx
