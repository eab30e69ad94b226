#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sd::store {

struct VerifyReport {
  size_t records_ok = 0;
  std::vector<std::string> damage;  // each names the file, entry or key and byte offset
  std::vector<std::string> notes;   // harmless: uncommitted tails of interrupted runs, duplicates
  bool ok() const { return damage.empty(); }
  nlohmann::json to_json() const;
};

// Reads every record of every part and checks the manifest (against its own checksum), each
// index entry, each record's header against its index entry, and every checksum. Never throws for
// damage: it reports it.
VerifyReport verify_store(const std::string& dir);

}  // namespace sd::store
