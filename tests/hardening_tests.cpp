// Contract: regression tests for what an attacker or a careless user tried
// (issue "Hardening"): no shell ever parses a path, and misuse gets a clear error.
#include "cli_harness.hpp"

#include "experiments/common/subprocess.hpp"

#include <doctest/doctest.h>

#include <filesystem>

using namespace remat;
using remat::testing::ScratchDir;

TEST_CASE("hardening: subprocesses get an argument vector, never a shell") {
  ScratchDir dir;
  const auto pwned = dir.path / "PWNED";
  // Were this string pasted into a shell command, `touch` would create the file.
  const std::string hostile = "q'; touch " + pwned.string() + "; echo '";
  CHECK(run_process({"/bin/echo", hostile}) == 0);
  CHECK_FALSE(std::filesystem::exists(pwned));
  CHECK(run_process({"/bin/false"}) == 1);
  CHECK(run_process({"/no/such/program"}) == 127);
  ChildProcess cat({"/bin/cat"});
  CHECK(cat.ask(hostile.c_str()) == hostile);
}

#ifdef REMAT_HAVE_CLI
TEST_CASE("hardening: compare --plot with shell metacharacters in the path runs no command") {
  ScratchDir dir;
  // A shell would run `touch PWNED` in the working directory.
  const auto pwned = std::filesystem::current_path() / "PWNED";
  std::filesystem::remove(pwned);
  const std::string csv = (dir.path / "c.csv").string();
  const std::string plot = (dir.path / "q'; touch PWNED; echo '.png").string();
  auto o = testing::cli({"compare", "--model", "mlp:layers=2,width=4,batch=2", "--budgets", "60%", "--repeat", "1",
                         "--csv", csv, "--plot", plot});
  CHECK_FALSE(std::filesystem::exists(pwned));
  // The plot script got the hostile name as one argument and wrote exactly that file.
  CHECK_MESSAGE(o.code == 0, o.err);
  CHECK(std::filesystem::exists(plot));
}
#endif
