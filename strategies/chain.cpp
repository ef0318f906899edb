// Contract: Chain (chain.hpp), the stage-level model of Beaumont et al. 2019
// (arXiv:1911.13214, the chain model: fw, bw, cw, cbw, ftmp, btmp;
// docs/papers.md "Heterogeneous chains").
//  - validate(): L >= 1; fw and ftmp have L entries, bw, cw, cbw and btmp have
//    L+1; every value >= 0; cbw[i] >= cw[i] for i >= 1 (xbar(i) includes x(i)).
//    Errors: Error "[chain <name>] <field> has 5 entries, expected L+1 = 6".
//  - to_json()/from_json(): an object with the integer arrays fw, bw, cw, cbw,
//    ftmp, btmp, fdrop and an optional string "name". ftmp and btmp may be
//    omitted (zeros), fdrop too (the rotor model: F_n keeps x(i) throughout). Anything else (not an object, a missing or non-array field, a
//    non-integer or negative entry, an unknown key) throws Error
//    "[chain <source>] ..." naming the source and the field.
//  - uniform(n): fw = 1, bw = 2 with bw[L] = 0 (the loss), cw = 1, cbw = 2 for
//    every index (cbw[0] is never read: no stage produces x(0); it is 2 so that
//    the arrays are uniform), ftmp = btmp = 0.
//  - parse_spec(): "uniform:n=N" (1 <= N <= 10^7) or "file:PATH" (a regular JSON
//    file of at most 64 MiB, nested at most 16 deep, no duplicate keys; values at
//    most 2^50); errors name the spec and never print a whole offending value.
//  - in_slots(b): every memory field (cw, cbw, ftmp, btmp) becomes ceil(x / b)
//    slots, so a plan that fits in slots fits in bytes; times are unchanged.
#include "strategies/chain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace remat {

namespace {

struct Field {
  const char* name;
  std::vector<std::int64_t> Chain::*member;
  bool length_is_l_plus_1;
  bool optional;
  bool may_be_empty;  // absent means "the default model", not zeros
};

const Field fields[] = {
    {"fw", &Chain::fw, false, false, false},   {"bw", &Chain::bw, true, false, false},
    {"cw", &Chain::cw, true, false, false},    {"cbw", &Chain::cbw, true, false, false},
    {"ftmp", &Chain::ftmp, false, true, false}, {"btmp", &Chain::btmp, true, true, false},
    {"fdrop", &Chain::fdrop, false, true, true},
};

void validate_as(const Chain& chain, const std::string& label) {
  const auto L = static_cast<std::size_t>(chain.fw.size());
  if (L < 1) throw Error(fmt::format("[chain {}] fw is empty: a chain needs at least one stage (L >= 1)", label));
  if (L > 10000000)
    throw Error(fmt::format("[chain {}] {} stages; a chain has at most 10000000", label, L));
  for (const auto& f : fields) {
    const auto& values = chain.*(f.member);
    const std::size_t expected = f.length_is_l_plus_1 ? L + 1 : L;
    if (f.may_be_empty && values.empty()) continue;
    if (values.size() != expected)
      throw Error(fmt::format("[chain {}] {} has {} entries, expected {} = {}", label, f.name, values.size(),
                              f.length_is_l_plus_1 ? "L+1" : "L", expected));
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (values[i] < 0) throw Error(fmt::format("[chain {}] {}[{}] = {} is negative", label, f.name, i, values[i]));
      if (values[i] > chain_value_limit)
        throw Error(fmt::format("[chain {}] {}[{}] = {} is too large (at most 2^50 = {})", label, f.name, i, values[i],
                                chain_value_limit));
    }
  }
  for (std::size_t i = 1; i <= L; ++i)
    if (chain.cbw[i] < chain.cw[i])
      throw Error(fmt::format("[chain {}] cbw[{}] = {} is smaller than cw[{}] = {} (xbar(i) includes x(i))", label, i,
                              chain.cbw[i], i, chain.cw[i]));
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

// At most 60 characters of a JSON value, for messages: never the whole value (an array
// or object is described, not printed, so no deep value is ever walked recursively).
std::string excerpt(const nlohmann::json& v) {
  if (v.is_array()) return fmt::format("[...] ({} elements)", v.size());
  if (v.is_object()) return fmt::format("{{...}} ({} keys)", v.size());
  std::string text = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}

// The deepest nesting of arrays and objects in a JSON text (strings skipped), so that a
// pathological file is refused before the recursive parser sees it.
std::size_t nesting_depth(const std::string& text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  return deepest;
}

// Refuses duplicate keys (nlohmann keeps the last one silently).
struct DuplicateKey {
  std::string key;
};


}  // namespace

void Chain::validate() const { validate_as(*this, name.empty() ? std::string("unnamed") : name); }

Chain Chain::parse_text(const std::string& text, const std::string& source) {
  if (text.size() > chain_file_limit)
    throw Error(fmt::format("[chain {}] the file has {} bytes; chain files may have at most {} bytes (64 MiB)", source,
                            text.size(), chain_file_limit));
  if (const std::size_t depth = nesting_depth(text); depth > chain_nesting_limit)
    throw Error(fmt::format("[chain {}] arrays or objects nested {} deep; a chain file nests at most {} deep", source,
                            depth, chain_nesting_limit));
  // Duplicate keys are refused (the parser would keep the last one without a word).
  std::vector<std::vector<std::string>> keys;  // the keys seen in each open object
  auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys.emplace_back();
    else if (event == E::object_end && !keys.empty()) keys.pop_back();
    else if (event == E::key && !keys.empty()) {
      const std::string key = parsed.get<std::string>();
      if (std::find(keys.back().begin(), keys.back().end(), key) != keys.back().end()) throw DuplicateKey{key};
      keys.back().push_back(key);
    }
    return true;
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text, callback);
  } catch (const DuplicateKey& d) {
    throw Error(fmt::format("[chain {}] the key '{}' appears twice", source, d.key));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("[chain {}] not valid JSON: {}", source, e.what()));
  }
  return from_json(json, source);
}

nlohmann::json Chain::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  if (!name.empty()) j["name"] = name;
  for (const auto& f : fields)
    if (!(f.may_be_empty && (this->*(f.member)).empty())) j[f.name] = this->*(f.member);
  return j;
}

Chain Chain::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object())
    throw Error(fmt::format("[chain {}] expected a JSON object with arrays fw, bw, cw, cbw (ftmp, btmp optional), got {}",
                            source, json.type_name()));
  for (auto it = json.begin(); it != json.end(); ++it) {
    bool known = it.key() == "name";
    for (const auto& f : fields) known = known || it.key() == f.name;
    if (!known)
      throw Error(fmt::format("[chain {}] unknown field '{}' (expected name, fw, bw, cw, cbw, ftmp, btmp, fdrop)", source,
                              it.key()));
  }
  Chain chain;
  if (auto it = json.find("name"); it != json.end()) {
    if (!it->is_string()) throw Error(fmt::format("[chain {}] name must be a string, got {}", source, it->type_name()));
    chain.name = it->get<std::string>();
  } else {
    chain.name = source;
  }
  for (const auto& f : fields) {
    auto it = json.find(f.name);
    if (it == json.end()) {
      if (f.optional) continue;
      throw Error(fmt::format("[chain {}] missing field '{}'", source, f.name));
    }
    if (!it->is_array())
      throw Error(fmt::format("[chain {}] field '{}' must be an array of integers, got {}", source, f.name,
                              it->type_name()));
    auto& values = chain.*(f.member);
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& v = (*it)[i];
      if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(chain_value_limit))
          throw Error(fmt::format("[chain {}] {}[{}] = {} is too large (at most 2^50 = {})", source, f.name, i, u,
                                  chain_value_limit));
        values.push_back(static_cast<std::int64_t>(u));
      } else if (v.is_number_integer()) {
        values.push_back(v.get<std::int64_t>());
      } else {
        throw Error(fmt::format("[chain {}] {}[{}] must be an integer, got {} {}", source, f.name, i, v.type_name(),
                                excerpt(v)));
      }
    }
  }
  const std::size_t L = chain.fw.size();
  if (json.find("ftmp") == json.end()) chain.ftmp.assign(L, 0);
  if (json.find("btmp") == json.end()) chain.btmp.assign(L + 1, 0);
  validate_as(chain, source);
  return chain;
}

Chain Chain::uniform(int stages) {
  if (stages < 1) throw Error(fmt::format("[chain uniform] n = {} stages: a chain needs n >= 1", stages));
  Chain c;
  c.name = fmt::format("uniform:n={}", stages);
  const auto L = static_cast<std::size_t>(stages);
  c.fw.assign(L, 1);
  c.bw.assign(L + 1, 2);
  c.bw[L] = 0;
  c.cw.assign(L + 1, 1);
  c.cbw.assign(L + 1, 2);
  c.ftmp.assign(L, 0);
  c.btmp.assign(L + 1, 0);
  return c;
}

Chain Chain::parse_spec(const std::string& spec) {
  const std::string uniform_prefix = "uniform:n=", file_prefix = "file:";
  if (spec.rfind(uniform_prefix, 0) == 0) {
    const std::string digits = spec.substr(uniform_prefix.size());
    long long n = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || n < 1 || n > 10000000)
      throw Error(fmt::format("[chain {}] N must be an integer between 1 and 10000000, got '{}'", spec, digits));
    return uniform(static_cast<int>(n));
  }
  if (spec.rfind(file_prefix, 0) == 0) {
    const std::string path = spec.substr(file_prefix.size());
    if (path.empty()) throw Error(fmt::format("[chain {}] the file path is empty", spec));
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status))
      throw Error(fmt::format("[chain {}] cannot open '{}' for reading: no such file", spec, path));
    if (std::filesystem::is_directory(status))
      throw Error(fmt::format("[chain {}] cannot read '{}': it is a directory", spec, path));
    if (!std::filesystem::is_regular_file(status))
      throw Error(fmt::format("[chain {}] cannot read '{}': not a regular file (a device, a pipe or a socket)", spec, path));
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > chain_file_limit)
      throw Error(fmt::format("[chain {}] '{}' has {} bytes; chain files may have at most {} bytes (64 MiB)", spec, path,
                              size, chain_file_limit));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("[chain {}] cannot open '{}' for reading", spec, path));
    std::string text(chain_file_limit + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) throw Error(fmt::format("[chain {}] cannot read '{}'", spec, path));
    text.resize(static_cast<std::size_t>(in.gcount()));
    return parse_text(text, spec);
  }
  throw Error(fmt::format("[chain {}] unknown chain spec: expected 'uniform:n=N' or 'file:PATH'", spec));
}

Chain Chain::in_slots(std::int64_t slot_bytes) const {
  validate();
  if (slot_bytes < 1) throw Error(fmt::format("[chain {}] slot size {} bytes: must be >= 1", name, slot_bytes));
  Chain c = *this;
  for (auto* field : {&c.cw, &c.cbw, &c.ftmp, &c.btmp, &c.fdrop})
    for (auto& v : *field) v = ceil_div(v, slot_bytes);
  return c;
}

}  // namespace remat
