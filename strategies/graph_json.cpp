// Contract: node-link JSON in and out, and schedules as id sequences (see graph_json.hpp).
#include "strategies/graph_json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <queue>
#include <set>

namespace remat {
namespace {

using nlohmann::json;

std::string id_text(const json& id) { return id.is_string() ? id.get<std::string>() : id.dump(); }

// An id as the map key: integers and strings are distinct ("1" is not 1).
std::string id_key(const json& id, const std::string& where) {
  if (id.is_number_integer()) return fmt::format("#{}", id.dump());
  if (id.is_string()) return fmt::format("${}", id.get<std::string>());
  throw Error(where + ": an id must be an integer or a string, got " + id.dump());
}

std::int64_t integral(const json& x, const std::string& where, const char* field) {
  if (x.is_number_integer()) {
    if (x.is_number_unsigned() && x.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw Error(fmt::format("{}: '{}' = {} is too large", where, field, x.dump()));
    return x.get<std::int64_t>();
  }
  if (x.is_number_float()) {
    const double d = x.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18) return static_cast<std::int64_t>(d);
  }
  throw Error(fmt::format("{}: '{}' must be an integer, got {}", where, field, x.dump()));
}

bool canonical_integer(const std::string& s) {
  if (s.empty() || s.size() > 18) return false;
  std::size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size() || (s[i] == '0' && s.size() > i + 1)) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return s != "-0";
}

}  // namespace

TrainingGraph read_node_link_json(const json& j, const std::string& source) {
  const std::string top = "[graph " + source + "]";
  if (!j.is_object()) throw Error(top + " expected a JSON object with \"nodes\" and \"links\"");
  if (!j.contains("nodes") || !j["nodes"].is_array()) throw Error(top + " expected a \"nodes\" array");
  const char* links_key = j.contains("links") ? "links" : j.contains("edges") ? "edges" : nullptr;
  if (!links_key || !j[links_key].is_array()) throw Error(top + " expected a \"links\" array");
  const json& nodes = j["nodes"];
  const json& links = j[links_key];

  struct Raw {
    json id;
    std::string name;
    bool backward = false, recomputable = true;
    double cost = 0;
    std::vector<std::int64_t> outputs;
    std::int64_t workspace = 0;
    int tape_node = -1;
  };
  std::vector<Raw> raw;
  std::map<std::string, int> index;
  std::set<std::string> texts;
  bool integer_ids = true;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const json& nd = nodes[i];
    std::string where = fmt::format("{} node {}", top, i);
    if (!nd.is_object()) throw Error(where + ": expected an object");
    if (!nd.contains("id")) throw Error(where + ": has no \"id\"");
    Raw r;
    r.id = nd["id"];
    const std::string key = id_key(r.id, where);
    where = fmt::format("{} node {}", top, id_text(r.id));
    if (!index.emplace(key, static_cast<int>(i)).second) throw Error(where + ": the id appears twice");
    if (!texts.insert(id_text(r.id)).second)
      throw Error(where + ": the id is written both as a number and as a string elsewhere; ids must be distinct as text");
    integer_ids = integer_ids && r.id.is_number_integer();
    if (nd.contains("name")) {
      if (!nd["name"].is_string()) throw Error(where + ": \"name\" must be a string");
      r.name = nd["name"].get<std::string>();
    } else {
      r.name = id_text(r.id);
    }
    if (nd.contains("backward")) {
      if (!nd["backward"].is_boolean()) throw Error(where + ": \"backward\" must be true or false");
      r.backward = nd["backward"].get<bool>();
    }
    if (!nd.contains("cost_cpu")) throw Error(where + ": has no \"cost_cpu\" (its compute cost)");
    if (!nd["cost_cpu"].is_number()) throw Error(where + ": \"cost_cpu\" must be a number, got " + nd["cost_cpu"].dump());
    r.cost = nd["cost_cpu"].get<double>();
    if (!std::isfinite(r.cost) || r.cost < 0)
      throw Error(fmt::format("{}: \"cost_cpu\" must be finite and >= 0, got {}", where, nd["cost_cpu"].dump()));
    if (!nd.contains("cost_ram")) throw Error(where + ": has no \"cost_ram\" (the size of its output)");
    const std::int64_t ram = integral(nd["cost_ram"], where, "cost_ram");
    if (ram < 0) throw Error(fmt::format("{}: \"cost_ram\" must be >= 0, got {}", where, ram));
    if (nd.contains("outputs")) {
      if (!nd["outputs"].is_array()) throw Error(where + ": \"outputs\" must be an array of sizes");
      std::int64_t sum = 0;
      for (const auto& o : nd["outputs"]) {
        const std::int64_t b = integral(o, where, "outputs");
        if (b < 0) throw Error(fmt::format("{}: an output size must be >= 0, got {}", where, b));
        r.outputs.push_back(b);
        sum += b;
      }
      if (sum != ram)
        throw Error(fmt::format("{}: \"cost_ram\" = {} must equal the sum of \"outputs\" ({})", where, ram, sum));
    } else {
      r.outputs.push_back(ram);
    }
    if (nd.contains("workspace")) {
      r.workspace = integral(nd["workspace"], where, "workspace");
      if (r.workspace < 0) throw Error(fmt::format("{}: \"workspace\" must be >= 0, got {}", where, r.workspace));
    }
    if (nd.contains("recomputable")) {
      if (!nd["recomputable"].is_boolean()) throw Error(where + ": \"recomputable\" must be true or false");
      r.recomputable = nd["recomputable"].get<bool>();
    }
    if (nd.contains("tape_node")) r.tape_node = static_cast<int>(integral(nd["tape_node"], where, "tape_node"));
    raw.push_back(std::move(r));
  }
  const int n = static_cast<int>(raw.size());

  // Links: (source, target) -> output slots read.
  std::map<std::pair<int, int>, std::set<int>> reads;
  for (std::size_t e = 0; e < links.size(); ++e) {
    const json& l = links[e];
    const std::string where = fmt::format("{} link {}", top, e);
    if (!l.is_object() || !l.contains("source") || !l.contains("target"))
      throw Error(where + ": expected an object with \"source\" and \"target\"");
    auto endpoint = [&](const char* field) {
      auto it = index.find(id_key(l[field], where));
      if (it == index.end())
        throw Error(fmt::format("{}: {} {} is not a node id", where, field, id_text(l[field])));
      return it->second;
    };
    const int s = endpoint("source"), t = endpoint("target");
    if (s == t) throw Error(fmt::format("{}: node {} depends on itself", where, id_text(raw[static_cast<std::size_t>(s)].id)));
    std::vector<int> slots;
    if (l.contains("values")) {
      if (!l["values"].is_array()) throw Error(where + ": \"values\" must be an array of output slots");
      for (const auto& x : l["values"]) slots.push_back(static_cast<int>(integral(x, where, "values")));
    } else {
      const auto& outs = raw[static_cast<std::size_t>(s)].outputs;
      if (outs.size() != 1)
        throw Error(fmt::format("{}: node {} has {} outputs; the link must say which (\"values\")", where,
                                id_text(raw[static_cast<std::size_t>(s)].id), outs.size()));
      slots.push_back(0);
    }
    for (int slot : slots) {
      if (slot < 0 || slot >= static_cast<int>(raw[static_cast<std::size_t>(s)].outputs.size()))
        throw Error(fmt::format("{}: node {} has no output {}", where, id_text(raw[static_cast<std::size_t>(s)].id), slot));
      reads[{s, t}].insert(slot);
    }
  }

  // The order: listed, ascending integer ids, or a stable topological sort.
  std::vector<std::vector<int>> preds(static_cast<std::size_t>(n)), succs(static_cast<std::size_t>(n));
  for (const auto& [edge, slots] : reads) {
    preds[static_cast<std::size_t>(edge.second)].push_back(edge.first);
    succs[static_cast<std::size_t>(edge.first)].push_back(edge.second);
  }
  auto topological = [&](const std::vector<int>& order) {
    std::vector<int> pos(static_cast<std::size_t>(n));
    for (int p = 0; p < n; ++p) pos[static_cast<std::size_t>(order[static_cast<std::size_t>(p)])] = p;
    for (const auto& [edge, slots] : reads)
      if (pos[static_cast<std::size_t>(edge.first)] >= pos[static_cast<std::size_t>(edge.second)]) return false;
    return true;
  };
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  if (!topological(order)) {
    std::vector<int> by_id = order;
    bool sorted_ok = false;
    if (integer_ids) {
      std::stable_sort(by_id.begin(), by_id.end(), [&](int a, int b) {
        return raw[static_cast<std::size_t>(a)].id.get<std::int64_t>() < raw[static_cast<std::size_t>(b)].id.get<std::int64_t>();
      });
      sorted_ok = topological(by_id);
    }
    if (sorted_ok) {
      order = by_id;
    } else {
      std::vector<int> indegree(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) indegree[static_cast<std::size_t>(i)] = static_cast<int>(preds[static_cast<std::size_t>(i)].size());
      std::priority_queue<int, std::vector<int>, std::greater<>> ready;
      for (int i = 0; i < n; ++i)
        if (indegree[static_cast<std::size_t>(i)] == 0) ready.push(i);
      order.clear();
      while (!ready.empty()) {
        const int i = ready.top();
        ready.pop();
        order.push_back(i);
        for (int s : succs[static_cast<std::size_t>(i)])
          if (--indegree[static_cast<std::size_t>(s)] == 0) ready.push(s);
      }
      if (static_cast<int>(order.size()) != n) {
        int stuck = 0;
        while (indegree[static_cast<std::size_t>(stuck)] == 0) ++stuck;
        throw Error(fmt::format("{} the links contain a cycle (node {} '{}' is on or after one); a training graph is "
                                "acyclic",
                                top, id_text(raw[static_cast<std::size_t>(stuck)].id), raw[static_cast<std::size_t>(stuck)].name));
      }
    }
  }

  TrainingGraph g;
  g.name = source;
  if (j.contains("graph") && j["graph"].is_object() && j["graph"].contains("name") && j["graph"]["name"].is_string())
    g.name = j["graph"]["name"].get<std::string>();
  g.integer_ids = integer_ids;
  std::vector<int> node_of(static_cast<std::size_t>(n));
  std::vector<std::vector<int>> value_of(static_cast<std::size_t>(n));
  for (int i : order) {
    const Raw& r = raw[static_cast<std::size_t>(i)];
    GraphNode node;
    node.id = id_text(r.id);
    node.name = r.name;
    node.backward = r.backward;
    node.cost = r.cost;
    node.workspace = r.workspace;
    node.recomputable = r.recomputable;
    node.tape_node = r.tape_node;
    const int k = g.add_node(std::move(node));
    node_of[static_cast<std::size_t>(i)] = k;
    for (std::size_t slot = 0; slot < r.outputs.size(); ++slot)
      value_of[static_cast<std::size_t>(i)].push_back(g.add_value(
          k, r.outputs[slot], r.outputs.size() == 1 ? r.name : fmt::format("{}[{}]", r.name, slot)));
  }
  for (const auto& [edge, slots] : reads)
    for (int slot : slots)
      g.add_input(node_of[static_cast<std::size_t>(edge.second)],
                  value_of[static_cast<std::size_t>(edge.first)][static_cast<std::size_t>(slot)]);
  for (auto& node : g.nodes) std::sort(node.inputs.begin(), node.inputs.end());
  g.finalize();
  return g;
}

TrainingGraph read_node_link_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("[graph " + path + "] cannot open the file");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw Error("[graph " + path + "] not valid JSON: " + e.what());
  }
  TrainingGraph g = read_node_link_json(j, path);
  return g;
}

json to_node_link_json(const TrainingGraph& g) {
  auto id_json = [&](const GraphNode& node) -> json {
    if (g.integer_ids && canonical_integer(node.id)) return std::stoll(node.id);
    return node.id;
  };
  json out;
  out["directed"] = true;
  out["multigraph"] = false;
  out["graph"] = {{"name", g.name}, {"generator", "remat"}};
  json& nodes = out["nodes"] = json::array();
  for (int k = 0; k < g.size(); ++k) {
    const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
    json nd = {{"id", id_json(node)}, {"name", node.name}, {"backward", node.backward}};
    if (node.cost == std::floor(node.cost) && std::fabs(node.cost) < 9.0e15)
      nd["cost_cpu"] = static_cast<std::int64_t>(node.cost);
    else
      nd["cost_cpu"] = node.cost;
    nd["cost_ram"] = g.output_bytes(k);
    if (node.outputs.size() != 1) {
      json sizes = json::array();
      for (int v : node.outputs) sizes.push_back(g.values[static_cast<std::size_t>(v)].bytes);
      nd["outputs"] = sizes;
    }
    if (node.workspace != 0) nd["workspace"] = node.workspace;
    if (!node.recomputable) nd["recomputable"] = false;
    if (node.tape_node >= 0) nd["tape_node"] = node.tape_node;
    nodes.push_back(std::move(nd));
  }
  json& links = out["links"] = json::array();
  for (int k = 0; k < g.size(); ++k) {
    std::map<int, std::vector<int>> by_producer;  // producer -> slots read
    for (int v : g.nodes[static_cast<std::size_t>(k)].inputs) {
      const int p = g.values[static_cast<std::size_t>(v)].producer;
      const auto& outs = g.nodes[static_cast<std::size_t>(p)].outputs;
      by_producer[p].push_back(static_cast<int>(std::find(outs.begin(), outs.end(), v) - outs.begin()));
    }
    for (auto& [p, slots] : by_producer) {
      json l = {{"source", id_json(g.nodes[static_cast<std::size_t>(p)])}, {"target", id_json(g.nodes[static_cast<std::size_t>(k)])}};
      if (g.nodes[static_cast<std::size_t>(p)].outputs.size() != 1) {
        std::sort(slots.begin(), slots.end());
        l["values"] = slots;
      }
      links.push_back(std::move(l));
    }
  }
  return out;
}

json schedule_to_json(const TrainingGraph& g, const GraphSchedule& schedule) {
  const GraphScheduleStats st = simulate_graph_schedule(g, schedule);
  const GraphScheduleStats topo = simulate_graph_schedule(g, topological_schedule(g));
  json seq = json::array();
  for (int k : schedule.steps) {
    const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
    if (g.integer_ids && canonical_integer(node.id)) seq.push_back(std::stoll(node.id));
    else seq.push_back(node.id);
  }
  json out;
  out["sequence"] = std::move(seq);
  out["peak"] = st.peak;
  out["compute"] = st.cost;
  out["recomputations"] = st.recomputations;
  out["topological_peak"] = topo.peak;
  out["topological_compute"] = topo.cost;
  out["overhead"] = topo.cost > 0 ? st.cost / topo.cost - 1.0 : 0.0;
  return out;
}

GraphSchedule schedule_from_json(const TrainingGraph& g, const json& j, const std::string& source) {
  const std::string top = "[schedule " + source + "]";
  const json* seq = &j;
  if (j.is_object()) {
    if (!j.contains("sequence")) throw Error(top + " expected a \"sequence\" of node ids");
    seq = &j["sequence"];
  }
  if (!seq->is_array()) throw Error(top + " the sequence must be an array of node ids");
  std::map<std::string, int> index;
  for (int k = 0; k < g.size(); ++k) index[g.nodes[static_cast<std::size_t>(k)].id] = k;
  GraphSchedule s;
  for (std::size_t i = 0; i < seq->size(); ++i) {
    const json& id = (*seq)[i];
    if (!id.is_number_integer() && !id.is_string())
      throw Error(fmt::format("{} step {}: a node id must be an integer or a string, got {}", top, i, id.dump()));
    auto it = index.find(id_text(id));
    if (it == index.end()) throw Error(fmt::format("{} step {}: {} is not a node id of the graph", top, i, id_text(id)));
    s.steps.push_back(it->second);
  }
  return s;
}

}  // namespace remat
