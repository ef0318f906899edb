// Contract: the remat CLI's commands as functions (tested without a process),
// and the parsing of budgets. Each returns the process exit code; errors are
// thrown as remat::Error / InfeasibleBudget and turned into messages by main.
#pragma once

#include "models/models.hpp"
#include "strategies/strategies.hpp"

#include <optional>
#include <string>

namespace remat {

inline const char* default_model_spec = "mlp:layers=100,width=512,batch=256,act=relu";

struct CommonOptions {
  std::string chain, model, strategy, budget, heuristic = "dtr", costs = "analytic", device = "cpu";
  std::optional<int> slots;
  int dp_slots = 200, repeat = 3, threads = 0;
  bool json = false, print_program = false;
};

struct CompareOptions {
  std::string model = default_model_spec, budgets, device = "cpu", csv, plot;
  int repeat = 5, threads = 0;
  bool json = false;
};

// "1048576", "512KiB", "64MiB", "1.5GiB" (also K, M, G, KB, MB, GB as powers of 1024).
std::size_t parse_budget(const std::string& text);

int command_plan(const CommonOptions& options);
int command_run(const CommonOptions& options);
int command_compare(const CompareOptions& options);
// The whole command line (cli.cpp): parses argv and runs one command; never throws.
int run_cli(int argc, char** argv);

}  // namespace remat
