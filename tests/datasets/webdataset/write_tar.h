// Tar shards written at test time with libarchive (ustar), for the webdataset reader, the laion /
// cc_sbu builders and the valor webdataset loader tests (whose sources link tests/support/make_media.cpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace cb::test {

// (member name, bytes) in order; creates the parent directories.
void write_tar(const std::filesystem::path& path, const std::vector<std::pair<std::string, std::string>>& members);

// `n_shards` shards dir/00000.tar, ... of `per_shard` samples each: sample i of shard k has the key
// "s<k>_<i>", a JPEG of tests/support/make_media.h's pattern_frame(10 k + i, height, width) and the
// caption "shard s<k>_<i>".
void write_image_shards(const std::filesystem::path& dir, int n_shards, int per_shard, int64_t height = 24,
                        int64_t width = 32);

}  // namespace cb::test
