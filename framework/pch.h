// Precompiled header: the heavy, stable includes every layer uses.
#pragma once
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>
