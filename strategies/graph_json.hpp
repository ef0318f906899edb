// Contract: training graphs in the node-link JSON that Checkmate exports and Moccasin
// publishes (networkx's node_link_data), and schedules as sequences any outside simulator
// can replay.
//
// Format: {"nodes": [{"id", "name", "backward", "cost_cpu", "cost_ram"}, ...],
//          "links": [{"source", "target"}, ...]}   ("edges" is accepted for "links").
//  - id: an integer or a string, unique; a link names its endpoints by id.
//  - backward: bool (absent: false); cost_cpu: number >= 0; cost_ram: integer >= 0 (a
//    number with an integral value is accepted), the size of the node's output.
//  - node order: the order of the list when it is topological, else ascending integer ids
//    when that is, else the list's order repaired by a stable topological sort. A cycle,
//    an unknown endpoint, a self-loop or a duplicate id is an Error naming the node.
// remat writes the same format and adds, only where they differ from the default, fields
// other tools ignore and remat reads back exactly: "workspace" (bytes live while the node
// computes), "recomputable": false, "outputs": [sizes] (a node with several output values;
// cost_ram is then their sum) with "values": [slot, ...] on each link from such a node, and
// "tape_node". An outside tool that ignores them sees each node's outputs as one value (it
// lives until the last reader of any of them: never less memory) and no workspace (less
// memory by at most the largest workspace).
// Errors are "[graph <source>] ...", source being the file path or the caller's label.
#pragma once

#include "strategies/training_graph.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace remat {

TrainingGraph read_node_link_json(const nlohmann::json& json, const std::string& source = "json");
TrainingGraph read_node_link_file(const std::string& path);
nlohmann::json to_node_link_json(const TrainingGraph& graph);

// A schedule for outside simulators: {"sequence": [node ids in order], "peak", "compute",
// "recomputations", "topological_peak", "topological_compute", "overhead"} where overhead is
// compute / topological_compute - 1 (the topological order computes every node once).
nlohmann::json schedule_to_json(const TrainingGraph& graph, const GraphSchedule& schedule);
// The inverse ("sequence" of ids, or a bare array of ids); Error naming an unknown id.
GraphSchedule schedule_from_json(const TrainingGraph& graph, const nlohmann::json& json,
                                 const std::string& source = "json");

}  // namespace remat
