#pragma once
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Python's pickle, protocol 2, restricted to what `torch.save` writes: dicts (plain and
// OrderedDict), lists, tuples, strings, numbers, None, bools and tensors whose storages
// are persistent ids ('storage', torch.<Type>Storage, key, location, numel) kept as
// separate records of the zip (see checkpoint.cpp).
namespace sd::io {

// The storage record `key` as raw bytes holding `numel` values of `dtype`, or an
// sd::Error when it is missing or too short. Called once per key.
using StorageLoader =
    std::function<at::Storage(const std::string& key, at::ScalarType dtype, int64_t numel)>;

// Decodes `bytes` (a data.pkl). `source` names the file in every error message.
// Dicts come back as GenericDicts in insertion order; tensors are CPU views of the
// loaded storages (views of one storage share it, as in Python).
c10::IValue unpickle(std::string_view bytes, const StorageLoader& load_storage,
                     const std::string& source);

// Encodes `value` (dicts with string or int keys, lists, tuples, tensors, strings, ints,
// doubles, bools, None) as data.pkl bytes. Each tensor becomes storage key "<i>", its
// contiguous CPU copy appended to `storages` in that order.
std::string pickle(const c10::IValue& value, std::vector<at::Tensor>& storages);

// The opcodes we read and write (names as in Python's pickletools; the last three are
// protocol 4, which `torch.save(..., pickle_protocol=4)` writes).
enum class Op : uint8_t {
  PROTO = 0x80,
  STOP = '.',
  GLOBAL = 'c',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BUILD = 'b',
  MARK = '(',
  TUPLE = 't',
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  EMPTY_TUPLE = ')',
  EMPTY_DICT = '}',
  SETITEM = 's',
  SETITEMS = 'u',
  EMPTY_LIST = ']',
  APPEND = 'a',
  APPENDS = 'e',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  BINGET = 'h',
  LONG_BINGET = 'j',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  LONG1 = 0x8a,
  BINFLOAT = 'G',
  BINUNICODE = 'X',
  NONE = 'N',
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  SHORT_BINUNICODE = 0x8c,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

// "torch.FloatStorage" <-> at::kFloat, for the dtypes torch.save writes.
std::optional<at::ScalarType> dtype_of_storage_type(const std::string& global_name);
std::string storage_type_of_dtype(at::ScalarType dtype);

}  // namespace sd::io
