// Contract: the `remat` executable: sets a sane OpenMP wait policy, then runs
// run_cli() (experiments/cli/cli.cpp, where the commands and exit codes are described).
#include "experiments/cli/commands.hpp"

#include <cstdlib>
#include <iostream>
#include <unistd.h>

using namespace remat;

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY once, when it loads. Its default spin-waiting
  // workers starve OpenBLAS's threads on small machines (a 100-layer MLP step
  // measured 12x slower on 2 cores), so unless the user chose a policy the CLI
  // runs itself again with the passive one. If exec fails we simply go on.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  return run_cli(argc, argv);
}
