#include <ATen/ATen.h>

#include <cstring>
#include <limits>
#include <utility>

#include "io/pickle.h"
#include "util/error.h"

namespace sd::io {
namespace {

const std::pair<const char*, at::ScalarType> kStorageTypes[] = {
    {"torch.FloatStorage", at::kFloat}, {"torch.DoubleStorage", at::kDouble},
    {"torch.HalfStorage", at::kHalf},   {"torch.BFloat16Storage", at::kBFloat16},
    {"torch.LongStorage", at::kLong},   {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar},
    {"torch.ByteStorage", at::kByte},   {"torch.BoolStorage", at::kBool},
};

// Writes the same opcodes as Python's pickle (protocol 2) writes for these values,
// without memoizing: every GLOBAL is spelled out, which torch.load accepts.
class Pickler {
 public:
  explicit Pickler(std::vector<at::Tensor>& storages) : storages_(storages) {}

  std::string run(const c10::IValue& value) {
    op(Op::PROTO);
    out_.push_back(2);
    write(value);
    op(Op::STOP);
    return std::move(out_);
  }

 private:
  void op(Op o) { out_.push_back(static_cast<char>(o)); }

  template <typename T>
  void raw(T v) {  // little-endian, as on every machine we run on
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.append(b, sizeof(T));
  }

  void write(const c10::IValue& v) {
    if (v.isNone()) {
      op(Op::NONE);
    } else if (v.isBool()) {
      op(v.toBool() ? Op::NEWTRUE : Op::NEWFALSE);
    } else if (v.isInt()) {
      write_int(v.toInt());
    } else if (v.isDouble()) {
      write_double(v.toDouble());
    } else if (v.isString()) {
      write_string(v.toStringRef());
    } else if (v.isTensor()) {
      write_tensor(v.toTensor());
    } else if (v.isTuple()) {
      op(Op::MARK);
      for (const auto& e : v.toTupleRef().elements()) write(e);
      op(Op::TUPLE);
    } else if (v.isList()) {
      op(Op::EMPTY_LIST);
      op(Op::MARK);
      for (const c10::IValue& e : v.toListRef()) write(e);
      op(Op::APPENDS);
    } else if (v.isGenericDict()) {
      write_dict(v.toGenericDict());
    } else {
      throw Error("cannot save a value of type " + v.tagKind() + " in a torch.save file");
    }
  }

  void write_int(int64_t v) {
    if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      op(Op::BININT);
      raw(static_cast<int32_t>(v));
    } else {
      op(Op::LONG1);
      out_.push_back(8);
      raw(v);
    }
  }

  void write_double(double v) {  // big-endian IEEE double
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    op(Op::BINFLOAT);
    for (int shift = 56; shift >= 0; shift -= 8) out_.push_back(static_cast<char>(bits >> shift));
  }

  void write_string(const std::string& s) {
    op(Op::BINUNICODE);
    raw(static_cast<uint32_t>(s.size()));
    out_ += s;
  }

  void write_global(const std::string& module, const std::string& name) {
    op(Op::GLOBAL);
    out_ += module + "\n" + name + "\n";
  }

  void write_dict(const c10::impl::GenericDict& dict) {
    op(Op::EMPTY_DICT);
    if (dict.empty()) return;
    op(Op::MARK);
    for (const auto& entry : dict) {
      if (!entry.key().isString() && !entry.key().isInt())
        throw Error("cannot save a dict key of type " + entry.key().tagKind());
      write(entry.key());
      write(entry.value());
    }
    op(Op::SETITEMS);
  }

  // _rebuild_tensor_v2(('storage', torch.<Type>Storage, '<i>', 'cpu', numel), 0, size,
  // contiguous stride, False, OrderedDict()), exactly as torch.save spells a tensor.
  void write_tensor(const at::Tensor& t) {
    std::string storage_type = storage_type_of_dtype(t.scalar_type());
    at::Tensor data = t.detach().to(at::kCPU).contiguous();
    std::string key = std::to_string(storages_.size());
    storages_.push_back(data);

    write_global("torch._utils", "_rebuild_tensor_v2");
    op(Op::MARK);
    op(Op::MARK);
    write_string("storage");
    size_t dot = storage_type.rfind('.');
    write_global(storage_type.substr(0, dot), storage_type.substr(dot + 1));
    write_string(key);
    write_string("cpu");
    write_int(data.numel());
    op(Op::TUPLE);
    op(Op::BINPERSID);
    write_int(0);
    write_ints(data.sizes());
    write_ints(data.strides());
    op(Op::NEWFALSE);
    write_global("collections", "OrderedDict");
    op(Op::EMPTY_TUPLE);
    op(Op::REDUCE);
    op(Op::TUPLE);
    op(Op::REDUCE);
  }

  void write_ints(at::IntArrayRef values) {
    op(Op::MARK);
    for (int64_t v : values) write_int(v);
    op(Op::TUPLE);
  }

  std::vector<at::Tensor>& storages_;
  std::string out_;
};

}  // namespace

std::optional<at::ScalarType> dtype_of_storage_type(const std::string& global_name) {
  for (const auto& [name, dtype] : kStorageTypes)
    if (global_name == name) return dtype;
  return std::nullopt;
}

std::string storage_type_of_dtype(at::ScalarType dtype) {
  for (const auto& [name, d] : kStorageTypes)
    if (d == dtype) return name;
  throw Error(std::string("cannot save tensors of dtype ") + c10::toString(dtype));
}

std::string pickle(const c10::IValue& value, std::vector<at::Tensor>& storages) {
  return Pickler(storages).run(value);
}

}  // namespace sd::io
