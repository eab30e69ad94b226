#pragma once
#include <ATen/core/ivalue.h>

#include <string>

#include "io/state_dict.h"

namespace sd::io {

// Reads a file written by Python's `torch.save` (zip format, pickle protocol 2): plain
// dicts and OrderedDicts (with `_metadata`), nested dicts/lists/tuples, tensors of every
// common dtype, strings, numbers, None, bools. Needs no LibTorch >= 2.6 (our own unpickler).
// A truncated file, a non-zip file or an unsupported pickle is an sd::Error naming the file.
c10::IValue read_torch_file(const std::string& path);

// The top-level dict of tensors of a checkpoint (`sam_vit_h_4b8939.pth`, `mobile_sam.pt`,
// our own exports), in file order. A value that is not a tensor is an error naming its key.
StateDict read_state_dict(const std::string& path);
// The same for a value read_torch_file gave (`path` names it in errors).
StateDict state_dict_of(const c10::IValue& value, const std::string& path);

// Writes what `torch.load` reads back as a dict (insertion order kept) of tensors,
// atomically (see util/atomic_file.h). Tensors may live on any device.
void write_state_dict(const std::string& path, const StateDict& entries);

// The same for any value made of dicts with string keys, lists, tensors, strings,
// numbers and bools (training checkpoints, `store get`, ...).
void write_torch_file(const std::string& path, const c10::IValue& value);

}  // namespace sd::io
