// Contract: the remat CLI's commands as functions (tested without a process). Each
// returns the process exit code; errors are thrown as remat::Error / InfeasibleBudget
// and turned into messages by run_cli (cli.cpp).
//  - Budgets use one syntax everywhere (strategies/budget.hpp): bytes or a percentage
//    of store-all's peak on the same graph.
//  - Options a chosen strategy does not read are refused (exit 2), never ignored.
//  - Every output file is opened (or its folder checked) before any planning, and every
//    write is checked; a failed write is an error, never exit 0.
//  - run and compare check the three promises with check_promises (autodiff/promises.hpp);
//    a broken promise exits 4.
#pragma once

#include "models/models.hpp"
#include "models/onnx/onnx_import.hpp"
#include "strategies/budget.hpp"
#include "strategies/strategies.hpp"

#include <optional>
#include <string>

namespace remat {

inline const char* default_model_spec = "mlp:layers=100,width=512,batch=256,act=relu";

// --onnx PATH with its --loss and --inputs (name=x.npy,labels=y.npy).
struct OnnxSource {
  std::string path, loss, inputs;
};

struct CommonOptions {
  std::string chain, model, strategy, budget, costs = "analytic", device = "cpu";
  std::string graph, export_graph;  // plan only: --graph file:PATH, --export-graph PATH
  // plan --model only: the fixed memory of training (autodiff/training_memory.hpp) and
  // a budget on the total device memory instead of the activations.
  std::string optimizer = "sgd", master_weights, budget_total;
  std::optional<std::string> heuristic;
  std::optional<int> slots, dp_slots, threads;
  int repeat = 3;
  double time_limit = 60;  // seconds of planning
  bool json = false, print_program = false;
  OnnxSource onnx;         // instead of --model
  std::string save_grads;  // run only: a folder for one .npy per parameter gradient (--onnx)
};

struct CompareOptions {
  std::string model = default_model_spec, budgets, strategies, device = "cpu", csv, plot;
  int repeat = 5;
  std::optional<int> threads;
  double time_limit = 60;  // seconds of planning, per strategy
  bool json = false;
  OnnxSource onnx;  // instead of --model
};

// The model of --model SPEC or --onnx PATH (exactly one); with --inputs, every step binds
// the .npy files. `imported`, when given, receives the ONNX names (its model is moved out).
Model model_for(const std::string& command, const std::string& spec, const OnnxSource& onnx,
                OnnxModel* imported = nullptr);

int command_plan(const CommonOptions& options);
int command_run(const CommonOptions& options);
int command_compare(const CompareOptions& options);
// The whole command line (cli.cpp): parses argv and runs one command; never throws.
int run_cli(int argc, char** argv);

// The StrategyOptions of `o` for strategy `info`; refuses options the strategy does
// not read ("[plan] --slots does not apply to optimal (it applies to: sqrt, revolve)").
StrategyOptions strategy_options_for(const std::string& command, const StrategyInfo& info,
                                     const std::optional<int>& slots, const std::optional<std::string>& heuristic,
                                     const std::optional<int>& dp_slots, double time_limit = 60);

}  // namespace remat
