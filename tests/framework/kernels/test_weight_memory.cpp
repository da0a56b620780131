// The frozen LLM's weight storage (framework/kernels/weight_memory.h) and the page release of a mapped
// file that a loader copies from (framework/checkpoint/mapped_file.h).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "framework/checkpoint/mapped_file.h"
#include "framework/kernels/weight_memory.h"
#include "tests/support/proc_self.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;

namespace {

constexpr uintptr_t kHuge = uintptr_t{2} << 20;

// The /proc/self/smaps block of the mapping that starts at `start` ("" when none does).
std::string smaps_entry(const void* start) {
  std::ifstream in("/proc/self/smaps");
  std::ostringstream entry;
  std::string line;
  bool in_entry = false;
  const auto want = reinterpret_cast<uintptr_t>(start);
  while (std::getline(in, line)) {
    const auto dash = line.find('-');
    const bool header =
        dash != std::string::npos && line.find(' ') > dash && line.find_first_not_of("0123456789abcdef") == dash;
    if (header) {
      if (in_entry) break;
      in_entry = std::stoull(line.substr(0, dash), nullptr, 16) == want;
    }
    if (in_entry) entry << line << '\n';
  }
  return entry.str();
}

// A numeric field ("Size:", "THPeligible:") of an smaps entry; -1 when absent.
int64_t smaps_field(const std::string& entry, const std::string& field) {
  const auto at = entry.find("\n" + field);
  return at == std::string::npos ? -1 : std::stoll(entry.substr(at + 1 + field.size()));
}

std::string thp_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

TEST_CASE("empty_weight_storage: 2 MB-aligned huge-page memory from 2 MB up, freed with the tensor") {
  void* start = nullptr;
  {
    auto big = cb::kernels::empty_weight_storage({3, (int64_t{1} << 20) + 5}, torch::kByte);  // just over 3 MB
    CHECK(big.sizes() == torch::IntArrayRef({3, (int64_t{1} << 20) + 5}));
    CHECK(big.scalar_type() == torch::kByte);
    start = big.data_ptr();
    CHECK(reinterpret_cast<uintptr_t>(start) % kHuge == 0);
    big.fill_(3);
    CHECK(big.sum().item<int64_t>() == 3 * big.numel());
    const auto entry = smaps_entry(start);
    REQUIRE_FALSE(entry.empty());  // its own mapping: two huge pages, nothing else in it
    CHECK(smaps_field(entry, "Size:") == 4096);
    if (thp_mode().find("[never]") == std::string::npos && smaps_field(entry, "THPeligible:") >= 0)
      CHECK(smaps_field(entry, "THPeligible:") == 1);  // the advice took
  }
  CHECK(smaps_entry(start).empty());  // unmapped with the tensor

  auto small = cb::kernels::empty_weight_storage({16, 16}, torch::kFloat);
  CHECK(small.sizes() == torch::IntArrayRef({16, 16}));
  CHECK(small.scalar_type() == torch::kFloat);
}

TEST_CASE("copy_to_weight_storage: the same values on weight storage") {
  const auto t = torch::randn({700, 1024});  // 2.7 MB: huge-page storage
  const auto c = cb::kernels::copy_to_weight_storage(t);
  CHECK(reinterpret_cast<uintptr_t>(c.data_ptr()) % kHuge == 0);
  CHECK(c.data_ptr() != t.data_ptr());
  CHECK(torch::equal(c, t));
}

TEST_CASE("MappedFile::release_pages gives back a mapped file's pages and leaves other memory alone") {
  const auto path = cb::test::fresh_dir("release") / "weights.bin";
  constexpr size_t kBytes = size_t{16} << 20;
  {
    std::vector<char> bytes(kBytes);
    for (size_t i = 0; i < kBytes; ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(kBytes));
  }
  auto file = cb::MappedFile::open(path);
  auto checksum = [&] {
    uint64_t s = 0;
    for (size_t i = 0; i < kBytes; i += 64) s = s * 31 + file->data()[i];
    return s;
  };
  const auto sum = checksum();  // every page resident
  const auto before = cb::test::status_kib("RssFile:");
  cb::MappedFile::release_pages(file->data() + 100, kBytes - 200);  // all but the partial first/last pages
  const auto after = cb::test::status_kib("RssFile:");
  INFO("RssFile " << before << " -> " << after << " KiB");
  CHECK(before - after >= 12 * 1024);
  CHECK(checksum() == sum);  // read again from the page cache, unchanged

  // Anonymous memory, or a range that runs past the mapping's end, is not touched.
  std::vector<uint8_t> anon(size_t{8} << 20, 5);
  cb::MappedFile::release_pages(anon.data(), anon.size());
  CHECK(std::count(anon.begin(), anon.end(), 5) == static_cast<std::ptrdiff_t>(anon.size()));
  checksum();
  const auto resident = cb::test::status_kib("RssFile:");
  cb::MappedFile::release_pages(file->data(), kBytes + 4096);
  CHECK(cb::test::status_kib("RssFile:") >= resident - 64);
  file.reset();
  fs::remove(path);
}
