#include "tests/datasets/webdataset/write_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "tests/support/make_media.h"

namespace cb::test {

void write_tar(const std::filesystem::path& path, const std::vector<std::pair<std::string, std::string>>& members) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  archive* a = archive_write_new();
  archive_write_set_format_ustar(a);
  REQUIRE(archive_write_open_filename(a, path.c_str()) == ARCHIVE_OK);
  for (const auto& [name, data] : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    REQUIRE(archive_write_header(a, e) == ARCHIVE_OK);
    REQUIRE(archive_write_data(a, data.data(), data.size()) == static_cast<la_ssize_t>(data.size()));
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

void write_image_shards(const std::filesystem::path& dir, int n_shards, int per_shard, int64_t height, int64_t width) {
  for (int k = 0; k < n_shards; ++k) {
    std::vector<std::pair<std::string, std::string>> members;
    for (int i = 0; i < per_shard; ++i) {
      const std::string key = fmt::format("s{}_{}", k, i);
      const std::vector<uint8_t> jpeg = encode_jpeg(pattern_frame(10 * k + i, height, width));
      members.push_back({key + ".jpg", std::string(jpeg.begin(), jpeg.end())});
      members.push_back({key + ".txt", "shard " + key});
    }
    write_tar(dir / fmt::format("{:05d}.tar", k), members);
  }
}

}  // namespace cb::test
