#include "framework/checkpoint/pickle.h"

#include <array>
#include <cmath>
#include <cstring>

#include "framework/error.h"

namespace cb::pickle {
namespace {

// The globals torch.save puts into state dicts, optimizer states and LAVIS/HF checkpoints.
bool is_storage_class(const std::string& g) {
  static const std::array<const char*, 10> names = {
      "torch.FloatStorage", "torch.HalfStorage",  "torch.BFloat16Storage", "torch.DoubleStorage", "torch.LongStorage",
      "torch.IntStorage",   "torch.ShortStorage", "torch.CharStorage",     "torch.ByteStorage",   "torch.BoolStorage"};
  for (const char* n : names)
    if (g == n) return true;
  return false;
}

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 'o': return "OBJ";
    case 'i': return "INST";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 'p': return "PUT";
    case 'g': return "GET";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return "unknown";
  }
}

// Python's dict-key identity for the hashable values a checkpoint uses as keys; other values
// (tuples, tensors) are keyed by object identity.
std::string hash_key(const Value* v) {
  switch (v->kind) {
    case Kind::None: return "n";
    case Kind::Bool: return v->b ? "i1" : "i0";  // True == 1 in Python
    case Kind::Int: return fmt::format("i{}", v->i);
    case Kind::Float:
      if (std::isfinite(v->f) && v->f == std::trunc(v->f) && std::fabs(v->f) < 9.2e18)
        return fmt::format("i{}", int64_t(v->f));
      return fmt::format("f{}", v->f);
    case Kind::Str: return "s" + v->s;
    case Kind::Bytes: return "b" + v->s;
    case Kind::BigInt: return "L" + v->s;
    default: return fmt::format("p{}", static_cast<const void*>(v));
  }
}

class Unpickler {
 public:
  Unpickler(Arena& arena, const uint8_t* data, size_t size, size_t& pos, const std::string& label, const Hooks& hooks)
      : arena_(arena), d_(data), n_(size), pos_(pos), label_(label), hooks_(hooks) {}

  Value* run();

 private:
  template <typename... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) {
    fail("{}: pickle offset {}: {}", label_, op_pos_, fmt::format(f, std::forward<Args>(args)...));
  }
  const uint8_t* take(uint64_t k) {
    if (k > n_ - pos_) error("truncated: needs {} more bytes, {} left", k, n_ - pos_);
    const uint8_t* p = d_ + pos_;
    pos_ += size_t(k);
    return p;
  }
  uint64_t le(size_t k) {
    const uint8_t* p = take(k);
    uint64_t v = 0;
    for (size_t j = 0; j < k; ++j) v |= uint64_t(p[j]) << (8 * j);
    return v;
  }
  std::string line() {
    const void* nl = std::memchr(d_ + pos_, '\n', n_ - pos_);
    if (!nl) error("truncated: text argument without end of line");
    size_t len = static_cast<const uint8_t*>(nl) - (d_ + pos_);
    std::string s(reinterpret_cast<const char*>(take(len)), len);
    take(1);
    return s;
  }
  Value* make(Kind k) { return arena_.make(k); }
  Value* make_int(int64_t i) {
    Value* v = make(Kind::Int);
    v->i = i;
    return v;
  }
  Value* make_str(Kind k, uint64_t len) {
    const uint8_t* p = take(len);
    Value* v = make(k);
    v->s.assign(reinterpret_cast<const char*>(p), size_t(len));
    return v;
  }
  Value* long_int(uint64_t len);
  void push(Value* v) { stack_.push_back(v); }
  Value* pop() {
    if (stack_.size() <= floor()) error("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) error("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  Value* tuple(std::vector<Value*> items) {
    Value* t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  Value* list_target() {
    Value* l = top();
    if (l->kind != Kind::List) error("APPEND to a {}", kind_name(l->kind));
    return l;
  }
  void set_item(Value* dict, Value* key, Value* value) {
    if (dict->kind != Kind::Dict) error("SETITEM on a {}", kind_name(dict->kind));
    auto [it, fresh] = dict->index.emplace(hash_key(key), dict->entries.size());
    if (fresh) dict->entries.emplace_back(key, value);
    else dict->entries[it->second].second = value;
  }
  Value* global(const std::string& module, const std::string& name) {
    std::string g = module + "." + name;
    if (!global_allowed(g)) error("global '{}' is not allowed in a checkpoint", g);
    Value* v = make(Kind::Global);
    v->s = std::move(g);
    return v;
  }
  void memo_put(uint64_t key) { memo_[key] = top(); }
  Value* memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) error("memo entry {} was never stored", key);
    return it->second;
  }
  Value* reduce(Value* callable, Value* args);

  Arena& arena_;
  const uint8_t* d_;
  size_t n_;
  size_t& pos_;
  size_t op_pos_ = 0;
  const std::string& label_;
  const Hooks& hooks_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
};

Value* Unpickler::long_int(uint64_t len) {
  const uint8_t* p = take(len);
  // Little-endian two's complement; it fits int64 when every byte past the 8th is sign extension.
  bool negative = len > 0 && (p[len - 1] & 0x80);
  bool fits = true;
  for (uint64_t j = 8; j < len; ++j) fits &= p[j] == (negative ? 0xFF : 0x00);
  if (len > 8 && fits) fits = bool(p[7] & 0x80) == negative;
  if (!fits) {
    Value* v = make(Kind::BigInt);
    v->s.assign(reinterpret_cast<const char*>(p), size_t(len));
    return v;
  }
  uint64_t u = negative ? ~uint64_t(0) : 0;
  for (uint64_t j = 0; j < len && j < 8; ++j) {
    u &= ~(uint64_t(0xFF) << (8 * j));
    u |= uint64_t(p[j]) << (8 * j);
  }
  return make_int(int64_t(u));
}

Value* Unpickler::reduce(Value* callable, Value* args) {
  if (callable->kind != Kind::Global) error("REDUCE of a {} (not a global)", kind_name(callable->kind));
  if (args->kind != Kind::Tuple)
    error("REDUCE of '{}' with {} arguments (not a tuple)", callable->s, kind_name(args->kind));
  const std::string& g = callable->s;
  if (g == "collections.OrderedDict") {
    if (!args->items.empty()) error("collections.OrderedDict called with arguments");
    Value* d = make(Kind::Dict);
    d->ordered = true;
    return d;
  }
  if (g == "torch.Size") {
    if (args->items.size() != 1 || args->items[0]->kind != Kind::Tuple) error("torch.Size needs one tuple");
    return tuple(args->items[0]->items);
  }
  if (is_storage_class(g)) error("'{}' cannot be called", g);
  if (!hooks_.call) error("global '{}' cannot be called in this stream", g);
  return hooks_.call(g, *args);
}

Value* Unpickler::run() {
  for (;;) {
    op_pos_ = pos_;
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        uint64_t v = le(1);
        if (v > 5) error("unsupported pickle protocol {}", v);
        break;
      }
      case 0x95: {  // FRAME: only a length hint for buffered readers
        uint64_t len = le(8);
        if (len > n_ - pos_) error("truncated: FRAME of {} bytes, {} left", len, n_ - pos_);
        break;
      }
      case '.': {  // STOP
        if (!marks_.empty() || stack_.size() != 1) error("STOP with {} values on the stack", stack_.size());
        return stack_.back();
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                            // POP
      case '1': pop_mark(); break;                       // POP_MARK
      case '2': push(top()); break;                      // DUP
      case 'N': push(make(Kind::None)); break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Value* v = make(Kind::Bool);
        v->b = op == 0x88;
        push(v);
        break;
      }
      case 'J': push(make_int(int32_t(uint32_t(le(4))))); break;  // BININT
      case 'K': push(make_int(int64_t(le(1)))); break;            // BININT1
      case 'M': push(make_int(int64_t(le(2)))); break;            // BININT2
      case 0x8a: push(long_int(le(1))); break;                    // LONG1
      case 0x8b: {                                                // LONG4
        int32_t len = int32_t(uint32_t(le(4)));
        if (len < 0) error("LONG4 with negative length");
        push(long_int(uint64_t(len)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const uint8_t* p = take(8);
        uint64_t u = 0;
        for (int j = 0; j < 8; ++j) u = u << 8 | p[j];
        Value* v = make(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        push(v);
        break;
      }
      case 'X': push(make_str(Kind::Str, le(4))); break;     // BINUNICODE
      case 0x8c: push(make_str(Kind::Str, le(1))); break;    // SHORT_BINUNICODE
      case 0x8d: push(make_str(Kind::Str, le(8))); break;    // BINUNICODE8
      case 'T': push(make_str(Kind::Str, le(4))); break;     // BINSTRING (Python 2 str)
      case 'U': push(make_str(Kind::Str, le(1))); break;     // SHORT_BINSTRING
      case 'B': push(make_str(Kind::Bytes, le(4))); break;   // BINBYTES
      case 'C': push(make_str(Kind::Bytes, le(1))); break;   // SHORT_BINBYTES
      case 0x8e: push(make_str(Kind::Bytes, le(8))); break;  // BINBYTES8
      case ')': push(tuple({})); break;                      // EMPTY_TUPLE
      case 't': push(tuple(pop_mark())); break;              // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        size_t k = op - 0x84;
        if (stack_.size() < floor() + k) error("stack underflow");
        std::vector<Value*> items(stack_.end() - k, stack_.end());
        stack_.resize(stack_.size() - k);
        push(tuple(std::move(items)));
        break;
      }
      case ']': push(make(Kind::List)); break;  // EMPTY_LIST
      case 'l': {                               // LIST
        Value* l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case 'a': {  // APPEND
        Value* v = pop();
        list_target()->items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark();
        Value* l = list_target();
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      case '}': push(make(Kind::Dict)); break;  // EMPTY_DICT
      case 'd': {                               // DICT
        auto items = pop_mark();
        if (items.size() % 2) error("DICT with an odd number of items");
        Value* dict = make(Kind::Dict);
        for (size_t j = 0; j < items.size(); j += 2) set_item(dict, items[j], items[j + 1]);
        push(dict);
        break;
      }
      case 's': {  // SETITEM
        Value* value = pop();
        Value* key = pop();
        set_item(top(), key, value);
        break;
      }
      case 'u': {  // SETITEMS
        auto items = pop_mark();
        if (items.size() % 2) error("SETITEMS with an odd number of items");
        Value* dict = top();
        for (size_t j = 0; j < items.size(); j += 2) set_item(dict, items[j], items[j + 1]);
        break;
      }
      case 'q': memo_put(le(1)); break;          // BINPUT
      case 'r': memo_put(le(4)); break;          // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': push(memo_get(le(1))); break;    // BINGET
      case 'j': push(memo_get(le(4))); break;    // LONG_BINGET
      case 'c': {                                // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop();
        Value* module = pop();
        if (module->kind != Kind::Str || name->kind != Kind::Str) error("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 'R': {  // REDUCE
        Value* args = pop();
        Value* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD: e.g. the _metadata attribute of a state dict; kept, never interpreted
        Value* state = pop();
        top()->state = state;
        break;
      }
      case 'Q':    // BINPERSID
      case 'P': {  // PERSID
        Value* pid = op == 'Q' ? pop() : nullptr;
        if (!pid) {
          pid = make(Kind::Str);
          pid->s = line();
        }
        if (!hooks_.persistent_load) error("persistent id in a stream that has no storages");
        push(hooks_.persistent_load(*pid));
        break;
      }
      default: error("unsupported pickle opcode 0x{:02x} ({})", op, opcode_name(op));
    }
  }
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

const Value* Value::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  auto it = index.find("s" + key);
  return it == index.end() ? nullptr : entries[it->second].second;
}

Value* Arena::make(Kind k) {
  Value& v = values_.emplace_back();
  v.kind = k;
  return &v;
}

bool global_allowed(const std::string& g) {
  return g == "collections.OrderedDict" || g == "torch._utils._rebuild_tensor_v2" ||
         g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state" ||
         g == "torch.Size" || is_storage_class(g);
}

Value* unpickle(Arena& arena, const uint8_t* data, size_t size, size_t& pos, const std::string& label,
                const Hooks& hooks) {
  if (pos > size) fail("{}: pickle starts past the end of the data", label);
  return Unpickler(arena, data, size, pos, label, hooks).run();
}

}  // namespace cb::pickle
