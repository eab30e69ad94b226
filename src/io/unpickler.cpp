#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_map>

#include "io/pickle.h"
#include "util/error.h"

namespace sd::io {
namespace {

// One entry of the pickle machine's stack. Tuples stay Items until they land in a value,
// because the persistent id tuple holds a GLOBAL (the storage type), which is no IValue.
struct Item {
  c10::IValue value;
  std::string global;                        // "module.name" of a GLOBAL
  std::shared_ptr<std::vector<Item>> tuple;  // a tuple's elements
  int depth = 0;                             // a tuple's nesting depth
};

// Deeper values are refused: reading, copying and freeing them recurses once per level.
// A training checkpoint's optimiser state, the deepest torch.save writes, nests a few levels.
constexpr int kMaxDepth = 100;

// Lists and dicts are shared by reference (the memo hands out the same one again). One put
// into another value is sealed: changing it afterwards could make a value that contains
// itself, or one deeper than its depth says. `keep` holds it so that its address is not
// reused by another one.
struct Container {
  c10::IValue keep;
  int depth = 1;
  bool sealed = false;
};

class Unpickler {
 public:
  Unpickler(std::string_view bytes, const StorageLoader& load_storage, const std::string& source)
      : bytes_(bytes), load_storage_(load_storage), source_(source) {}

  c10::IValue run() {
    while (true) {
      auto op = static_cast<Op>(read<uint8_t>());
      if (op == Op::STOP) break;
      step(op);
    }
    if (stack_.size() != 1 || !marks_.empty())
      fail("STOP with " + std::to_string(stack_.size()) + " values on the stack");
    return to_value(stack_.back());
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(source_ + ": data.pkl (byte " + std::to_string(pos_) + "): " + what);
  }

  std::string_view take(size_t n) {
    if (n > bytes_.size() - pos_) fail("truncated pickle");
    std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  template <typename T>
  T read() {  // little-endian, as pickle and every machine we run on
    T out;
    std::memcpy(&out, take(sizeof(T)).data(), sizeof(T));
    return out;
  }

  std::string read_line() {
    size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) fail("truncated GLOBAL");
    std::string out(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }

  int64_t read_long1() {  // n-byte two's complement, little-endian
    uint8_t n = read<uint8_t>();
    if (n > 8) fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    std::string_view b = take(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(b[i])) << (8 * i);
    if (n > 0 && n < 8 && (uint8_t(b[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);
    return static_cast<int64_t>(v);
  }

  double read_binfloat() {  // big-endian IEEE double
    std::string_view b = take(8);
    uint64_t bits = 0;
    for (char c : b) bits = (bits << 8) | uint8_t(c);
    double out;
    std::memcpy(&out, &bits, 8);
    return out;
  }

  void push(c10::IValue v) { stack_.push_back(Item{std::move(v), {}, nullptr}); }

  void push_container(c10::IValue v) {
    containers_.emplace(v.internalToPointer(), Container{v});
    push(std::move(v));
  }

  Container* container_of(const Item& item) {
    if (!item.value.isList() && !item.value.isGenericDict()) return nullptr;
    auto it = containers_.find(item.value.internalToPointer());
    if (it == containers_.end()) fail("a list or dict of unknown origin");
    return &it->second;
  }

  int depth_of(const Item& item) {
    if (item.tuple) return item.depth;
    Container* c = container_of(item);
    return c ? c->depth : 0;
  }

  void seal(const Item& item) {
    if (Container* c = container_of(item)) c->sealed = true;
  }

  // `value` as it goes into the list or dict `container` (sealed first, so that a
  // container put into itself is refused).
  c10::IValue adopt(const Item& container, const Item& value) {
    seal(value);
    Container* c = container_of(container);
    if (c->sealed)
      fail("a list or dict is changed after it was put into another value (aliased memo entry)");
    c->depth = std::max(c->depth, depth_of(value) + 1);
    if (c->depth > kMaxDepth) fail("values nested deeper than " + std::to_string(kMaxDepth));
    return to_value(value);
  }

  Item pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back()))
      fail("pop from an empty stack");
    Item out = std::move(stack_.back());
    stack_.pop_back();
    return out;
  }

  Item& top() {
    if (stack_.empty()) fail("empty stack");
    return stack_.back();
  }

  std::vector<Item> pop_to_mark() {
    if (marks_.empty()) fail("no MARK");
    size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Item> out(std::make_move_iterator(stack_.begin() + start),
                          std::make_move_iterator(stack_.end()));
    stack_.resize(start);
    return out;
  }

  void push_tuple(std::vector<Item> items) {
    int depth = 1;
    for (const Item& e : items) {
      seal(e);
      depth = std::max(depth, depth_of(e) + 1);
    }
    if (depth > kMaxDepth) fail("values nested deeper than " + std::to_string(kMaxDepth));
    stack_.push_back(Item{{}, {}, std::make_shared<std::vector<Item>>(std::move(items)), depth});
  }

  void push_last_as_tuple(size_t n) {
    if (stack_.size() < n + (marks_.empty() ? 0 : marks_.back())) fail("tuple of missing values");
    std::vector<Item> items(std::make_move_iterator(stack_.end() - n),
                            std::make_move_iterator(stack_.end()));
    stack_.resize(stack_.size() - n);
    push_tuple(std::move(items));
  }

  c10::IValue to_value(const Item& item) const {
    if (!item.global.empty()) fail("'" + item.global + "' used as a value");
    if (!item.tuple) return item.value;
    std::vector<c10::IValue> elements;
    for (const Item& e : *item.tuple) elements.push_back(to_value(e));
    return c10::ivalue::Tuple::create(std::move(elements));
  }

  const std::vector<Item>& tuple_of(const Item& item, const char* what) const {
    if (!item.tuple) fail(std::string(what) + " is not a tuple");
    return *item.tuple;
  }

  int64_t int_of(const Item& item, const char* what) const {
    if (!item.value.isInt()) fail(std::string(what) + " is not an integer");
    return item.value.toInt();
  }

  std::string string_of(const Item& item, const char* what) const {
    if (!item.value.isString()) fail(std::string(what) + " is not a string");
    return item.value.toStringRef();
  }

  std::vector<int64_t> ints_of(const Item& item, const char* what) const {
    std::vector<int64_t> out;
    for (const Item& e : tuple_of(item, what)) out.push_back(int_of(e, what));
    return out;
  }

  void set_item(const Item& dict, const Item& key, const Item& value) {
    if (!dict.value.isGenericDict()) fail("SETITEM on something that is not a dict");
    c10::IValue k = to_value(key);
    if (!k.isString() && !k.isInt() && !k.isDouble() && !k.isBool())
      fail("dict key of type " + k.tagKind() + " is not supported");
    dict.value.toGenericDict().insert_or_assign(std::move(k), adopt(dict, value));
  }

  void append(const Item& list, const Item& value) {
    if (!list.value.isList()) fail("APPEND on something that is not a list");
    list.value.toList().push_back(adopt(list, value));
  }

  void global() {
    std::string module = read_line();
    std::string name = read_line();
    std::string full = module + "." + name;
    bool known = full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
                 full == "torch._utils._rebuild_parameter" || dtype_of_storage_type(full);
    if (!known) fail("unsupported global '" + full + "' (not a plain tensor checkpoint)");
    stack_.push_back(Item{{}, full, nullptr});
  }

  // ('storage', torch.<Type>Storage, key, location, numel) -> a 1-D tensor over the
  // whole storage, loaded once per key.
  void persistent_id() {
    Item pid = pop();
    const auto& t = tuple_of(pid, "persistent id");
    if (t.size() != 5 || string_of(t[0], "persistent id") != "storage")
      fail("persistent id is not ('storage', type, key, location, numel)");
    auto dtype = dtype_of_storage_type(t[1].global);
    if (!dtype) fail("persistent id names no storage type");
    std::string key = string_of(t[2], "storage key");
    int64_t numel = int_of(t[4], "storage size");
    if (numel < 0) fail("negative storage size");
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      at::Tensor flat = at::empty({0}, at::TensorOptions().dtype(*dtype));
      flat.set_(load_storage_(key, *dtype, numel), 0, {numel}, {1});
      it = storages_.emplace(key, flat).first;
    } else if (it->second.scalar_type() != *dtype || it->second.numel() != numel) {
      fail("storage '" + key + "' is used with two different types or sizes");
    }
    push(it->second);
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]).
  // requires_grad and hooks are ignored: a checkpoint holds values.
  at::Tensor rebuild_tensor(const std::vector<Item>& args) {
    if (args.size() < 4)
      fail("_rebuild_tensor_v2 with " + std::to_string(args.size()) + " arguments");
    if (!args[0].value.isTensor()) fail("_rebuild_tensor_v2 without a storage");
    at::Tensor flat = args[0].value.toTensor();
    int64_t offset = int_of(args[1], "storage offset");
    std::vector<int64_t> size = ints_of(args[2], "tensor size");
    std::vector<int64_t> stride = ints_of(args[3], "tensor stride");
    if (size.size() != stride.size()) fail("tensor size and stride differ in length");
    check_in_bounds(offset, size, stride, flat.numel());
    at::Tensor out = at::empty({0}, flat.options());
    out.set_(flat.storage(), offset, size, stride);
    return out;
  }

  // The last element addressed must lie inside the storage, and the element count fit in
  // 64 bits, without overflow.
  void check_in_bounds(int64_t offset, const std::vector<int64_t>& size,
                       const std::vector<int64_t>& stride, int64_t storage_numel) const {
    if (offset < 0 || offset > storage_numel) fail("storage offset out of range");
    int64_t last = offset, numel = 1;
    bool empty = false;
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) fail("negative tensor size or stride");
      if (size[d] == 0) empty = true;
      int64_t reach;
      if (__builtin_mul_overflow(size[d] > 0 ? size[d] - 1 : 0, stride[d], &reach) ||
          __builtin_add_overflow(last, reach, &last) ||
          __builtin_mul_overflow(numel, size[d], &numel))
        fail("tensor size/stride overflow");
    }
    if (!empty && last >= storage_numel)
      fail("tensor of size " + c10::str(at::IntArrayRef(size)) + " stride " +
           c10::str(at::IntArrayRef(stride)) + " offset " + std::to_string(offset) +
           " reaches past its storage of " + std::to_string(storage_numel) + " elements");
  }

  void reduce() {
    Item args = pop();
    Item callable = pop();
    const auto& a = tuple_of(args, "REDUCE arguments");
    if (callable.global == "collections.OrderedDict") {
      if (!a.empty()) fail("OrderedDict with constructor arguments");
      push_container(c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get()));
    } else if (callable.global == "torch._utils._rebuild_tensor_v2") {
      push(rebuild_tensor(a));
    } else if (callable.global == "torch._utils._rebuild_parameter") {
      if (a.empty() || !a[0].value.isTensor()) fail("_rebuild_parameter without a tensor");
      push(a[0].value);
    } else {
      fail("cannot call '" + (callable.global.empty() ? std::string("a value") : callable.global) +
           "'");
    }
  }

  void memo_put(uint32_t index) { memo_[index] = top(); }

  void memo_get(uint32_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo entry " + std::to_string(index) + " is missing");
    stack_.push_back(it->second);
  }

  void step(Op op) {
    switch (op) {
      case Op::PROTO:
        if (read<uint8_t>() > 5) fail("pickle protocol newer than 5");
        break;
      case Op::FRAME:
        read<uint64_t>();
        break;
      case Op::GLOBAL:
        global();
        break;
      case Op::BINPERSID:
        persistent_id();
        break;
      case Op::REDUCE:
        reduce();
        break;
      case Op::BUILD: {  // an OrderedDict's `_metadata` (module versions): not needed
        pop();
        if (!top().value.isGenericDict()) fail("BUILD on something that is not a dict");
        break;
      }
      case Op::MARK:
        marks_.push_back(stack_.size());
        break;
      case Op::TUPLE:
        push_tuple(pop_to_mark());
        break;
      case Op::EMPTY_TUPLE:
        push_tuple({});
        break;
      case Op::TUPLE1:
        push_last_as_tuple(1);
        break;
      case Op::TUPLE2:
        push_last_as_tuple(2);
        break;
      case Op::TUPLE3:
        push_last_as_tuple(3);
        break;
      case Op::EMPTY_DICT:
        push_container(c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get()));
        break;
      case Op::SETITEM: {
        Item value = pop();
        Item key = pop();
        set_item(top(), key, value);
        break;
      }
      case Op::SETITEMS: {
        std::vector<Item> items = pop_to_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of values");
        for (size_t i = 0; i < items.size(); i += 2) set_item(top(), items[i], items[i + 1]);
        break;
      }
      case Op::EMPTY_LIST:
        push_container(c10::impl::GenericList(c10::AnyType::get()));
        break;
      case Op::APPEND: {
        Item value = pop();
        append(top(), value);
        break;
      }
      case Op::APPENDS: {
        std::vector<Item> items = pop_to_mark();
        for (const Item& v : items) append(top(), v);
        break;
      }
      case Op::BINPUT:
        memo_put(read<uint8_t>());
        break;
      case Op::LONG_BINPUT:
        memo_put(read<uint32_t>());
        break;
      case Op::MEMOIZE:
        memo_put(static_cast<uint32_t>(memo_.size()));
        break;
      case Op::BINGET:
        memo_get(read<uint8_t>());
        break;
      case Op::LONG_BINGET:
        memo_get(read<uint32_t>());
        break;
      case Op::BININT:
        push(int64_t(read<int32_t>()));
        break;
      case Op::BININT1:
        push(int64_t(read<uint8_t>()));
        break;
      case Op::BININT2:
        push(int64_t(read<uint16_t>()));
        break;
      case Op::LONG1:
        push(read_long1());
        break;
      case Op::BINFLOAT:
        push(read_binfloat());
        break;
      case Op::BINUNICODE:
        push(std::string(take(read<uint32_t>())));
        break;
      case Op::SHORT_BINUNICODE:
        push(std::string(take(read<uint8_t>())));
        break;
      case Op::NONE:
        push(c10::IValue());
        break;
      case Op::NEWTRUE:
        push(true);
        break;
      case Op::NEWFALSE:
        push(false);
        break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", unsigned(op));
        fail(std::string("unsupported pickle opcode ") + hex);
      }
    }
  }

  std::string_view bytes_;
  size_t pos_ = 0;
  const StorageLoader& load_storage_;
  const std::string& source_;
  std::vector<Item> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Item> memo_;
  std::unordered_map<std::string, at::Tensor> storages_;
  std::unordered_map<const void*, Container> containers_;
};

}  // namespace

c10::IValue unpickle(std::string_view bytes, const StorageLoader& load_storage,
                     const std::string& source) {
  return Unpickler(bytes, load_storage, source).run();
}

}  // namespace sd::io
