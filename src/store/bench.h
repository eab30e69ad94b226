#pragma once
#include <nlohmann/json.hpp>

namespace sd::store {

// Store throughput on a temporary store of 64 records of a random 256x64x64 fp16 embedding, page cache
// warm: write (put + commit per 8 records, fsync included), sequential and random checked
// reads, reads decoded to float32, and bytes per record (record + index entry) per dtype.
nlohmann::json bench_store();

}  // namespace sd::store
