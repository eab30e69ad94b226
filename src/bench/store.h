#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sd::bench {

// Store throughput on a temporary store of 64 records of a random 256x64x64 fp16 embedding, page
// cache warm: write (put + commit per 8 records, fsync included), sequential and random checked
// reads, reads decoded to float32, and bytes per record (record + index entry) per dtype.
nlohmann::json bench_store();

// `samdistill embed` end to end (decode, resize, teacher forward, fp16 records) on the CPU
// over the SA-1B images of `folder`, with a randomly initialised `teacher` (preset or JSON
// config): "embed_img_per_s" (the whole run), "embed_startup_s" (before the first image),
// "embed_pipeline_img_per_s" (after it), "embed_teacher_img_per_s" (the teacher's forward passes
// alone), "embed_of_teacher_rate" (the two rates' ratio: 1 when reading, decoding and writing
// hide behind the teacher), "embed_teacher".
nlohmann::json bench_embed(const std::string& teacher, const std::string& folder);

}  // namespace sd::bench
