// Tar shards written at test time with libarchive (ustar), for the webdataset reader, the laion /
// cc_sbu builders and the valor webdataset loader tests.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace cb::test {

// (member name, bytes) in order; creates the parent directories.
void write_tar(const std::filesystem::path& path, const std::vector<std::pair<std::string, std::string>>& members);

}  // namespace cb::test
