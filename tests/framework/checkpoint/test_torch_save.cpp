// The torch.save writer (framework/checkpoint/torch_save.h, zip_writer.h): every value kind and
// tensor dtype read back by our reader (torch_load) value for value, the archive's layout (64-byte
// aligned records, CRC-32), and PyTorch itself as the peer: Debian's python3-torch loads what we
// write to the same values, and what it re-saves our reader loads again.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "framework/checkpoint/torch_load.h"
#include "framework/checkpoint/torch_save.h"
#include "framework/checkpoint/zip_reader.h"
#include "framework/checkpoint/zip_writer.h"
#include "framework/error.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/torch_peer.h"

using namespace cb;
using nlohmann::json;
using pickle::Kind;
using pickle::Value;

namespace {

// A tree with every kind the writer takes, integers at each opcode's boundaries, tensors of every
// storage dtype (a 0-d one, an empty one, a non-contiguous view).
Value* sample_tree(TreeBuilder& t) {
  Value* root = t.dict();
  std::vector<Value*> ints;
  for (int64_t i :
       {int64_t{0}, int64_t{255}, int64_t{256}, int64_t{65535}, int64_t{65536}, int64_t{-1},
        int64_t{std::numeric_limits<int32_t>::min()}, int64_t{std::numeric_limits<int32_t>::max()}, int64_t{1} << 40,
        -(int64_t{1} << 40), std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()})
    ints.push_back(t.integer(i));
  t.set(root, "ints", t.list(ints));
  t.set(root, "floats", t.tuple({t.real(1.5), t.real(-0.0), t.real(1e-8), t.real(-3.25e100)}));
  t.set(root, "none", t.none());
  t.set(root, "flags", t.tuple({t.boolean(true), t.boolean(false)}));
  t.set(root, "text", t.str("caf\xc3\xa9 ###Human:"));
  t.set(root, "tuples",
        t.list({t.tuple({}), t.tuple({t.integer(1)}),
                t.tuple({t.integer(1), t.integer(2), t.integer(3), t.integer(4), t.integer(5)})}));
  t.set(root, "empty", t.list({}));
  Value* by_int = t.dict();
  t.set(by_int, t.integer(7), t.str("seven"));
  t.set(root, "by_int", by_int);

  StateDict sd;
  const auto base = torch::arange(12, torch::kDouble).reshape({3, 4}) - 5.5;
  for (auto dtype : {torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kFloat64, torch::kInt64, torch::kInt32,
                     torch::kInt16, torch::kInt8, torch::kUInt8})
    sd.insert(std::string("t_") + c10::toString(dtype), (dtype == torch::kUInt8 ? base + 6 : base).to(dtype));
  sd.insert("bool", base > 0);
  sd.insert("scalar", torch::tensor(2.5f));
  sd.insert("empty", torch::zeros({0, 3}));
  sd.insert("transposed", base.to(torch::kFloat).t());
  t.set(root, "model", t.state_dict(sd));
  return root;
}

void check_same(const Value& a, const Value& b, const std::string& path) {
  INFO(path);
  REQUIRE(pickle::kind_name(a.kind) == std::string(pickle::kind_name(b.kind)));
  switch (a.kind) {
    case Kind::Bool: CHECK(a.b == b.b); break;
    case Kind::Int: CHECK(a.i == b.i); break;
    case Kind::Float:
      CHECK(a.f == b.f);
      CHECK(std::signbit(a.f) == std::signbit(b.f));
      break;
    case Kind::Str: CHECK(a.s == b.s); break;
    case Kind::List:
    case Kind::Tuple:
      REQUIRE(a.items.size() == b.items.size());
      for (size_t i = 0; i < a.items.size(); ++i) check_same(*a.items[i], *b.items[i], path + "/" + std::to_string(i));
      break;
    case Kind::Dict:
      CHECK(a.ordered == b.ordered);
      REQUIRE(a.entries.size() == b.entries.size());
      for (size_t i = 0; i < a.entries.size(); ++i) {
        check_same(*a.entries[i].first, *b.entries[i].first, path + "/key" + std::to_string(i));
        check_same(*a.entries[i].second, *b.entries[i].second, path + "/" + std::to_string(i));
      }
      break;
    case Kind::Tensor:
      CHECK(a.tensor.scalar_type() == b.tensor.scalar_type());
      CHECK(a.tensor.sizes() == b.tensor.sizes());
      CHECK(torch::equal(a.tensor, b.tensor));
      break;
    default: break;
  }
}

// Our tree against torch_peer.py's description of what torch.load returned.
void check_described(const Value& v, const json& d, const std::string& path) {
  INFO(path << ": " << d.dump().substr(0, 200));
  switch (v.kind) {
    case Kind::None: CHECK(d.contains("NoneType")); break;
    case Kind::Bool: CHECK(d.at("bool") == v.b); break;
    case Kind::Int: CHECK(d.at("int").get<int64_t>() == v.i); break;
    case Kind::Float: CHECK(std::stod(d.at("float").get<std::string>()) == v.f); break;
    case Kind::Str: CHECK(d.at("str") == v.s); break;
    case Kind::List:
    case Kind::Tuple: {
      const auto& items = d.at(v.kind == Kind::List ? "list" : "tuple");
      REQUIRE(items.size() == v.items.size());
      for (size_t i = 0; i < v.items.size(); ++i)
        check_described(*v.items[i], items[i], path + "/" + std::to_string(i));
      break;
    }
    case Kind::Dict: {
      CHECK(d.at("dict") == (v.ordered ? "OrderedDict" : "dict"));
      const auto& items = d.at("items");
      REQUIRE(items.size() == v.entries.size());
      for (size_t i = 0; i < v.entries.size(); ++i) {
        check_described(*v.entries[i].first, items[i][0], path + "/key");
        check_described(*v.entries[i].second, items[i][1], path + "/" + std::to_string(i));
      }
      break;
    }
    case Kind::Tensor: {
      const auto& t = v.tensor;
      std::string dtype = c10::toString(t.scalar_type());
      const std::map<std::string, std::string> python = {
          {"Float", "float32"}, {"Half", "float16"}, {"BFloat16", "bfloat16"}, {"Double", "float64"}, {"Long", "int64"},
          {"Int", "int32"},     {"Short", "int16"},  {"Char", "int8"},         {"Byte", "uint8"},     {"Bool", "bool"}};
      CHECK(d.at("tensor") == python.at(dtype));
      CHECK(d.at("shape").get<std::vector<int64_t>>() == t.sizes().vec());
      const auto values = t.to(torch::kDouble).contiguous().flatten();
      CHECK(d.at("values").get<std::vector<double>>() ==
            std::vector<double>(values.data_ptr<double>(), values.data_ptr<double>() + values.numel()));
      break;
    }
    default: FAIL("unexpected kind");
  }
}

}  // namespace

TEST_CASE("crc32 is zip's CRC-32", "[torch_save]") {
  const std::string check = "123456789";
  CHECK(crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()) == 0xCBF43926u);
  CHECK(crc32(nullptr, 0) == 0u);
  // Continued over two parts equals one pass.
  const auto* p = reinterpret_cast<const uint8_t*>(check.data());
  CHECK(crc32(p + 4, 5, crc32(p, 4)) == 0xCBF43926u);
}

TEST_CASE("torch_save: every value kind and dtype reads back through torch_load", "[torch_save]") {
  const auto dir = test::fresh_dir("torch_save_roundtrip");
  pickle::Arena arena;
  TreeBuilder t(arena);
  const Value* root = sample_tree(t);
  torch_save(*root, dir / "all.pth");

  const auto obj = torch_load(dir / "all.pth");
  CHECK(obj.format == "torch-zip");
  check_same(*root, *obj.root, "root");

  // Layout: data.pkl, one data/<key> per tensor, version; every record's data 64-byte aligned.
  ZipReader zip(dir / "all.pth");
  std::vector<std::string> names;
  for (const auto& r : zip.records()) {
    names.push_back(r.name);
    CHECK(r.data_offset % 64 == 0);
  }
  REQUIRE(names.size() == 2 + 13);
  CHECK(names.front() == "archive/data.pkl");
  CHECK(names[1] == "archive/data/0");
  CHECK(names.back() == "archive/version");
  const auto* version = zip.find("archive/version");
  REQUIRE(version);
  const auto v = zip.data(*version);
  CHECK(std::string(reinterpret_cast<const char*>(v.data()), v.size()) == "3\n");
}

TEST_CASE("torch_save refuses what it cannot write, naming it", "[torch_save]") {
  const auto dir = test::fresh_dir("torch_save_refuse");
  pickle::Arena arena;
  TreeBuilder t(arena);
  Value* root = t.dict();
  t.set(root, "c", t.tensor(torch::zeros({2}, torch::kComplexFloat)));
  CHECK_THROWS_WITH(torch_save(*root, dir / "x.pth"), Catch::Contains("dtype ComplexFloat cannot be written"));
  CHECK_THROWS_WITH(t.set(root, t.real(1.0), t.none()), Catch::Contains("dict keys must be str or int"));
  CHECK_FALSE(std::filesystem::exists(dir / "x.pth"));  // nothing half-written
}

TEST_CASE("PyTorch (python3-torch) loads what torch_save writes, and we load what it saves", "[torch_save]") {
  if (!test::torch_peer_available()) {
    WARN("skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch)");
    return;
  }
  const auto dir = test::fresh_dir("torch_save_peer");
  pickle::Arena arena;
  TreeBuilder t(arena);
  const Value* root = sample_tree(t);
  torch_save(*root, dir / "ours.pth");
  check_described(*root, test::torch_peer({"describe", (dir / "ours.pth").string()}), "root");

  test::torch_peer({"resave", (dir / "ours.pth").string(), (dir / "theirs.pth").string()});
  const auto back = torch_load(dir / "theirs.pth");
  check_same(*root, *back.root, "resaved");
}
