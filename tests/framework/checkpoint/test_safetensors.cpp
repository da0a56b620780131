#include <catch2/catch.hpp>
#include <fstream>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "tests/support/golden.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using cb::SafetensorsFile;

static fs::path scratch(const std::string& name) {
  static const auto d = cb::test::fresh_dir("st");
  return d / name;
}

static void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

static std::string with_header(std::string header, const std::string& data = "") {
  uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + data;
}

TEST_CASE("safetensors round trip keeps names, order, dtypes, values and metadata") {
  cb::StateDict sd;
  sd.insert("b.weight", torch::randn({3, 5}));
  sd.insert("a.ids", torch::arange(7, torch::kInt64));
  sd.insert("half", torch::randn({4}).to(torch::kFloat16));
  sd.insert("bf", torch::randn({2, 2}).to(torch::kBFloat16));
  sd.insert("mask", torch::tensor({1, 0, 1}, torch::kUInt8));
  sd.insert("flag", torch::tensor({true, false}));
  sd.insert("empty", torch::empty({0, 3}));
  sd.insert("strided", torch::randn({4, 6}).t());  // non-contiguous input
  auto p = scratch("rt.safetensors");
  cb::save_safetensors(p, sd, {{"format", "pt"}});
  SafetensorsFile f(p);
  REQUIRE(f.entries().size() == sd.size());
  CHECK(f.metadata().at("format") == "pt");
  size_t i = 0;
  for (const auto& kv : sd) {
    CHECK(f.entries()[i++].name == kv.key());
    auto t = f.tensor(kv.key());
    CHECK(t.scalar_type() == kv.value().scalar_type());
    CHECK(torch::equal(t, kv.value()));
  }
  CHECK((std::ifstream(p, std::ios::binary).seekg(0, std::ios::end).tellg() - std::streamoff(8) -
         std::streamoff(f.header_size())) >= 0);
  CHECK(f.header_size() % 8 == 0);
}

TEST_CASE("safetensors reads every golden fixture file") {
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(cb::test::golden_dir())) {
    if (e.path().extension() != ".safetensors") continue;
    SafetensorsFile f(e.path());
    for (const auto& en : f.entries()) {
      auto t = f.tensor(en.name);
      CHECK(t.sizes().vec() == en.shape);
    }
    ++files;
  }
  CHECK(files > 5);
}

TEST_CASE("safetensors rejects damaged headers with a message naming the file and the problem") {
  auto p = scratch("bad.safetensors");
  auto expect = [&](const std::string& bytes, const std::string& what) {
    write_bytes(p, bytes);
    try {
      SafetensorsFile f(p);
      FAIL("accepted a damaged file: " << what);
    } catch (const cb::Error& e) {
      std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(p.string()) != std::string::npos);
      CHECK(msg.find(what) != std::string::npos);
    }
  };
  expect("abc", "shorter than the 8-byte header length");
  expect(with_header("{}").substr(0, 8) + "{", "runs past the end");
  expect(with_header("{not json}"), "not a JSON object");
  expect(with_header(R"({"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
         "unsupported dtype 'Q7'");
  expect(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')),
         "out of range");
  expect(with_header(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')), "needs 12");
  expect(with_header(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})"), "non-negative");
  expect(with_header(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"), "absurd shape");
  expect(with_header(R"({"x":{"dtype":"F32","shape":[1]}})"), "lacks dtype/shape/data_offsets");
}

TEST_CASE("AtomicFile: an uncommitted write leaves the old file intact and no temporary behind") {
  auto p = scratch("atomic.bin");
  cb::atomic_write_file(p, "old contents");
  {
    cb::AtomicFile f(p);
    f.write("new, but the writer dies before commit");
  }
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  CHECK(s == "old contents");
  for (const auto& e : fs::directory_iterator(p.parent_path()))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  cb::atomic_write_file(p, "committed");
  std::ifstream in2(p);
  CHECK(std::string((std::istreambuf_iterator<char>(in2)), {}) == "committed");
}
