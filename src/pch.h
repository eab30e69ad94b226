// The precompiled header of every target (CMakeLists.txt: sd_pch): what most translation
// units include and what costs the most to parse. Never included by hand.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>
