// The unpickler, the zip reader and torch.save loading on hand-made and damaged input.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "framework/checkpoint/load.h"
#include "framework/checkpoint/pickle.h"
#include "framework/checkpoint/torch_load.h"
#include "framework/checkpoint/zip_reader.h"
#include "framework/error.h"
#include "tests/framework/checkpoint/expect.h"
#include "tests/support/scratch_dir.h"

using namespace cb;
using namespace std::string_literals;
using pickle::Kind;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const pickle::Value* unpickle_string(pickle::Arena& arena, const std::string& bytes) {
  size_t pos = 0;
  return unpickle_torch(arena, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), pos, "test.pkl",
                        [](const std::string&, torch::ScalarType dtype, int64_t numel) {
                          return torch::zeros({numel}, torch::TensorOptions().dtype(dtype));
                        });
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void put16(std::string& s, uint16_t v) { s.append({char(v & 0xFF), char(v >> 8)}); }
void put32(std::string& s, uint32_t v) { put16(s, uint16_t(v)), put16(s, uint16_t(v >> 16)); }
void put64(std::string& s, uint64_t v) { put32(s, uint32_t(v)), put32(s, uint32_t(v >> 32)); }

// A one-record archive whose central directory saturates every size/offset field and carries the
// real values in ZIP64 extra fields and records, as writers do for archives over 4 GiB.
std::string zip64_archive(const std::string& name, const std::string& data, uint16_t method) {
  std::string z;
  put32(z, 0x04034b50), put16(z, 45), put16(z, 0), put16(z, method), put32(z, 0), put32(z, 0);
  put32(z, 0xFFFFFFFF), put32(z, 0xFFFFFFFF), put16(z, uint16_t(name.size())), put16(z, 0);
  z += name + data;
  const uint64_t cd = z.size();
  put32(z, 0x02014b50), put16(z, 45), put16(z, 45), put16(z, 0), put16(z, method), put32(z, 0), put32(z, 0);
  put32(z, 0xFFFFFFFF), put32(z, 0xFFFFFFFF), put16(z, uint16_t(name.size())), put16(z, 28), put16(z, 0);
  put16(z, 0), put16(z, 0), put32(z, 0), put32(z, 0xFFFFFFFF);
  z += name;
  put16(z, 0x0001), put16(z, 24), put64(z, data.size()), put64(z, data.size()), put64(z, 0);
  const uint64_t cd_size = z.size() - cd, z64 = z.size();
  put32(z, 0x06064b50), put64(z, 44), put16(z, 45), put16(z, 45), put32(z, 0), put32(z, 0);
  put64(z, 1), put64(z, 1), put64(z, cd_size), put64(z, cd);
  put32(z, 0x07064b50), put32(z, 0), put64(z, z64), put32(z, 1);
  put32(z, 0x06054b50), put16(z, 0), put16(z, 0), put16(z, 0xFFFF), put16(z, 0xFFFF);
  put32(z, 0xFFFFFFFF), put32(z, 0xFFFFFFFF), put16(z, 0);
  return z;
}

}  // namespace

TEST_CASE("unpickler: ints beyond 32 and 64 bits, floats, strings, memo") {
  // PROTO 2; MARK; LONG1 2^40+1; LONG1 -2^33; LONG1(9 bytes) 2^64; BINFLOAT -2.5; SHORT_BINUNICODE;
  // EMPTY_DICT BINPUT 0; BINGET 0; LIST; STOP
  std::string p = "\x80\x02(";
  p += std::string("\x8a\x06\x01\x00\x00\x00\x00\x01", 8);
  p += std::string("\x8a\x05\x00\x00\x00\x00\xfe", 7);
  p += std::string("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01", 11);
  p += std::string("G\xc0\x04\x00\x00\x00\x00\x00\x00", 9);
  p += std::string("\x8c\x02hi", 4);
  p += std::string("}q\x00h\x00l.", 7);
  pickle::Arena arena;
  const auto* root = unpickle_string(arena, p);
  REQUIRE(root->kind == Kind::List);
  REQUIRE(root->items.size() == 7);
  CHECK(root->items[0]->i == (int64_t(1) << 40) + 1);
  CHECK(root->items[1]->i == -(int64_t(1) << 33));
  CHECK(root->items[2]->kind == Kind::BigInt);
  CHECK(root->items[3]->f == -2.5);
  CHECK(root->items[4]->s == "hi");
  CHECK(root->items[5] == root->items[6]);  // one object, referenced twice
}

TEST_CASE("unpickler: unknown opcodes and globals are errors naming them and the stream") {
  pickle::Arena arena;
  auto msg = error_of([&] { unpickle_string(arena, std::string("\x80\x02\x81.", 4)); });
  CHECK(msg.find("test.pkl") != std::string::npos);
  CHECK(msg.find("NEWOBJ") != std::string::npos);
  msg = error_of([&] {
    unpickle_string(arena,
                    "\x80\x02"
                    "cos\nsystem\n)R.");
  });
  CHECK(msg.find("os.system") != std::string::npos);
  msg = error_of([&] { unpickle_string(arena, std::string("\x80\x02X\xff\xff\x00\x00ab", 8)); });
  CHECK(msg.find("truncated") != std::string::npos);
  CHECK(!error_of([&] { unpickle_string(arena, "\x80\x02h\x05."s); }).empty());  // memo never stored
  CHECK(!error_of([&] { unpickle_string(arena, "\x80\x02N"); }).empty());        // no STOP
}

TEST_CASE("a list that contains itself is refused by the tree walk, not a crash") {
  pickle::Arena arena;
  const auto* root = unpickle_string(arena,
                                     "\x80\x02]q\x00h\x00"
                                     "a."s);
  REQUIRE(root->kind == Kind::List);
  CHECK(root->items[0] == root);
  CHECK_THROWS_AS(tensors_in(root), Error);
}

TEST_CASE("tensor views outside their storage are refused") {
  // _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 4), offset 2, size (3,), stride (1,), False,
  // OrderedDict())
  const std::string head =
      "\x80\x02"
      "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
      "ctorch\nFloatStorage\n"
      "X\x01\x00\x00\x00"
      "0X\x03\x00\x00\x00"
      "cpuK\x04tQ"s;
  const std::string tail =
      "\x89"
      "ccollections\nOrderedDict\n)RtR.";
  pickle::Arena arena;
  auto ok = unpickle_string(arena, head + "K\x01K\x03\x85K\x01\x85" + tail);
  REQUIRE(ok->kind == Kind::Tensor);
  CHECK(ok->tensor.sizes().vec() == std::vector<int64_t>{3});
  CHECK(ok->tensor.storage_offset() == 1);
  auto msg = error_of([&] { unpickle_string(arena, head + "K\x02K\x03\x85K\x01\x85" + tail); });
  CHECK(msg.find("storage '0'") != std::string::npos);
  CHECK(!error_of([&] { unpickle_string(arena, head + "K\x00K\x02K\x02\x86K\x03K\x01\x86"s + tail); }).empty());
}

TEST_CASE("zip reader: ZIP64 records and compressed records") {
  const std::string payload = "0123456789abcdef";
  auto z = zip64_archive("archive/data/0", payload, 0);
  ZipReader zip(reinterpret_cast<const uint8_t*>(z.data()), z.size(), "zip64.zip");
  REQUIRE(zip.records().size() == 1);
  CHECK(zip.records()[0].size == payload.size());
  auto d = zip.data(zip.records()[0]);
  CHECK(std::string(reinterpret_cast<const char*>(d.data()), d.size()) == payload);

  auto deflated = zip64_archive("archive/data.pkl", payload, 8);
  ZipReader zc(reinterpret_cast<const uint8_t*>(deflated.data()), deflated.size(), "deflated.zip");
  auto msg = error_of([&] { zc.data(zc.records()[0]); });
  CHECK(msg.find("archive/data.pkl") != std::string::npos);
  CHECK(msg.find("compressed") != std::string::npos);

  for (size_t cut : {size_t(0), size_t(10), z.size() / 2, z.size() - 1}) {
    INFO("cut at " << cut);
    CHECK_THROWS_AS(ZipReader(reinterpret_cast<const uint8_t*>(z.data()), cut, "cut.zip"), Error);
  }
}

TEST_CASE("damaged copies of the torch.save fixtures only ever raise cb::Error") {
  const auto dir = cb::test::fresh_dir("ckpt_unit");
  std::mt19937 rng(7);
  size_t tried = 0;
  for (const auto& e : cb::test::ckpt_expectations()) {
    if (e["format"] != "torch-zip" && e["format"] != "torch-legacy") continue;
    const std::filesystem::path src = e["_path"].get<std::string>();
    const auto name = src.filename().string();
    const std::string good = slurp(src);
    for (int i = 0; i < 150; ++i) {
      std::string bad = good;
      if (i % 3 == 0) {
        bad.resize(rng() % bad.size());
      } else {
        for (int k = 0; k < 1 + i % 5; ++k) bad[rng() % bad.size()] = char(rng());
      }
      const auto path = dir / name;
      { std::ofstream(path, std::ios::binary) << bad; }
      INFO(name << " variant " << i);
      try {
        auto obj = torch_load(path);
        for (auto& [p, t] : tensors_in(obj.root)) t.sum();  // every surviving view is readable
      } catch (const Error&) {
      }
      ++tried;
    }
  }
  std::filesystem::remove_all(dir);
  CHECK(tried > 0);
}
