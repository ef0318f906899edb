// Contract: the training graph, the node-level model that Checkmate (Jain et al., MLSys
// 2020, arXiv:1910.02653, Sec. 3-4) and Moccasin (Bartan et al., ICML 2023) plan on,
// and its lowerings. Strategies that use it emit schedules; none touches a tensor.
//
// Model. Nodes v_0..v_{n-1} are computations in a fixed topological order (Checkmate's
// frontier order: stage t is the first in which v_t is computed). A node reads values and
// produces values; a value is the unit of memory (bytes, or cost_ram units of a graph
// file). In a node-link graph every node produces exactly one value; a recorded tape's
// vjp may produce several (one gradient buffer per input it first writes, see
// training_graph_from_tape), and a chain stage two (x(i+1) and the rest of its tape).
// A node also has a compute cost, a workspace (bytes live only while it computes), and
// may be marked non-recomputable (computed exactly once: a placeholder-like input, or a
// vjp whose gradients are accumulated in place).
//
// Schedule semantics (the interchange rule of Checkmate and Moccasin, generalised to
// several values per node): a schedule is a sequence of node computations, repeats
// allowed. Each computation reads the most recent instance of each input value; an
// instance is resident from the computation that produces it to the last computation
// that reads it (the one being computed counts, and an instance nobody reads lives only
// during its own computation). The memory of a step is the sum of the instances resident
// at it plus the node's workspace; the peak is the largest step memory. A schedule is
// valid when every input was produced earlier, every node is computed at least once and
// every non-recomputable node exactly once. simulate_graph_schedule() is that rule.
//
// Tapes. training_graph_from_tape() makes one forward node per non-parameter node the
// loss needs (in compute_order) and one backward node per vjp of the reverse sweep (in
// backward_order), so that the peak of a schedule equals simulate() of its lowered
// Program (lower_to_program) to the byte; the one exception is conservative and named in
// training_graph.cpp. Parameters and their gradients are not budgeted and not modelled.
#pragma once

#include "autodiff/costs.hpp"
#include "autodiff/executor.hpp"
#include "strategies/chain.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace remat {

struct GraphValue {
  std::string name;
  std::int64_t bytes = 0;
  int producer = -1;         // the node computing it
  std::vector<int> readers;  // nodes reading it, ascending (filled by TrainingGraph::finalize)
};

struct GraphNode {
  std::string id;             // identifier in node-link files (the index by default)
  std::string name;
  bool backward = false;
  double cost = 0;            // compute cost (cost_cpu)
  std::int64_t workspace = 0; // bytes live only while this node computes
  bool recomputable = true;   // false: computed exactly once, in its own stage
  std::vector<int> inputs;    // values read (distinct)
  std::vector<int> outputs;   // values produced
  int tape_node = -1;         // tape graphs: the node computed (forward) or whose vjp runs (backward)
};

struct TrainingGraph {
  std::string name = "graph";
  std::vector<GraphNode> nodes;    // topological order: every input is produced by an earlier node
  std::vector<GraphValue> values;
  bool integer_ids = true;         // node ids are integers (written as JSON numbers)
  // Tape graphs only (lower_to_program): the loss and the parameters whose gradients are returned.
  int tape_loss = -1;
  std::vector<int> grad_targets;

  int size() const { return static_cast<int>(nodes.size()); }
  // Appends a node (its inputs and outputs are added with add_value / add_input).
  int add_node(GraphNode node);
  // A new value produced by `producer`.
  int add_value(int producer, std::int64_t bytes, std::string name = {});
  void add_input(int node, int value);
  // Fills readers and checks the graph: Error "[training graph <name>] ..." naming the node.
  void finalize();
  // Bytes of all values a node produces.
  std::int64_t output_bytes(int node) const;
  double total_cost() const;  // every node once
};

// A sequence of node computations (node indices), repeats allowed.
struct GraphSchedule {
  std::vector<int> steps;
};

struct GraphScheduleStats {
  std::int64_t peak = 0;   // largest step memory
  int peak_step = -1;
  double cost = 0;         // sum of the costs of every computation
  std::int64_t computations = 0;
  std::int64_t recomputations = 0;  // computations beyond each node's first
  std::vector<std::int64_t> step_memory;
};

// The interchange rule above; throws Error "[graph schedule] step k (node): ..." for an
// invalid schedule.
GraphScheduleStats simulate_graph_schedule(const TrainingGraph& graph, const GraphSchedule& schedule);
// Every node once, in the graph's order (the store-all schedule; budgets such as "80%"
// are fractions of its peak).
GraphSchedule topological_schedule(const TrainingGraph& graph);

// The largest memory of one step that every schedule has: over nodes v, the inputs and
// outputs of v plus its workspace, plus the values of non-recomputable nodes that must be
// resident across v's stage (produced before v, read by a non-recomputable node after v).
// No schedule peaks below it; `node` (optional) receives the v attaining it.
std::int64_t minimum_step_memory(const TrainingGraph& graph, int* node = nullptr);

// For each node, the largest node index reachable from it (itself included): a recomputation
// of v in stage t can serve some frontier only when last_descendants()[v] >= t.
std::vector<int> last_descendants(const TrainingGraph& graph);
// For each value, the last stage at which a useful computation can read it: over its readers
// j, j itself when j is not recomputable, else last_descendants()[j] (-1: never read).
std::vector<int> value_horizons(const TrainingGraph& graph);

// Checkmate's stage form of a schedule (Sec. 4.1): stage t computes some nodes i < t in
// increasing order, each at most once, then v_t. A schedule is in stage form when its first
// computations follow the graph's order and each stage's recomputations are increasing.
bool in_stage_form(const TrainingGraph& graph, const GraphSchedule& schedule);
// The same computations regrouped into stage form: each stage's recomputations (the nodes
// computed after v_{t-1}'s first computation and before v_t's) are sorted and
// deduplicated. Valid whenever the input is; its peak can differ. Throws Error when a
// node's first computation comes before that of an earlier node (no stage form exists).
GraphSchedule to_stage_form(const TrainingGraph& graph, const GraphSchedule& schedule);
// Drops recomputations whose instance nothing reads (repeatedly): cost and every step's
// memory can only go down.
GraphSchedule drop_unused_recomputations(const TrainingGraph& graph, const GraphSchedule& schedule);

// ---- Tapes ----
// Per tape node costs (index = tape node id); an empty vector means analytic.
struct TapeGraphCosts {
  std::vector<double> forward;
  std::vector<double> backward;
};
// A cost table (autodiff/costs.hpp: analytic, or profiled on the device) as graph costs.
TapeGraphCosts tape_graph_costs(const NodeCosts& costs);
// analytic_node_costs (the roofline: backward = 2x forward) as graph costs.
TapeGraphCosts analytic_tape_costs(const Tape& tape);

TrainingGraph training_graph_from_tape(const Tape& tape, int loss, const TapeGraphCosts& costs = {});
// forward node -> compute, backward node -> backward (the loss's is preceded by its
// seed_grad), then insert_frees(). The graph must come from training_graph_from_tape.
Program lower_to_program(const Tape& tape, const TrainingGraph& graph, const GraphSchedule& schedule,
                         const std::string& strategy = "graph");
// The inverse: compute and backward instructions as graph nodes (frees and seeds dropped).
GraphSchedule graph_schedule_from_program(const TrainingGraph& graph, const Program& program);

// ---- Chains ----
// x(0) is a non-recomputable input node; stage i is a forward node producing x(i+1)
// (cw[i+1]) and, when cbw[i+1] > cw[i+1], the rest of its tape (cbw[i+1] - cw[i+1]),
// workspace ftmp[i]; B_i is a non-recomputable backward node reading x(i), x(i+1), the
// tape and delta(i+1), producing delta(i) (cw[i]), workspace btmp[i]; B_L reads x(L).
// With cbw = cw the memory rule is the rotor model of schedule.cpp; with cbw > cw an
// untaped forward is charged its whole tape while it computes (conservative).
TrainingGraph training_graph_from_chain(const Chain& chain);

}  // namespace remat
