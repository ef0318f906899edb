// Contract: libFuzzer target for the command line: run_cli(argc, argv), exactly
// what the `remat` executable runs, with argv split from the input at newlines
// and NUL bytes (argv[0] is "remat"). stdout and stderr are swallowed. Must hold:
// run_cli returns (never throws, never crashes) with an exit code in {0, 2, 3}
// (4, a broken promise, is a finding too).
// Guards, in the target only: inputs that would write or read files (--csv,
// --plot, --memory-csv, file: chain specs), run large models (fuzz::small_model_spec
// with options <= 64 and a product <= 2^12, or `run`/`compare` without --model,
// whose default is a 100-layer MLP), long chains (uniform:n above 64), many repeats, threads or
// compared budgets, or a big DP table are skipped; the command line itself is not
// otherwise filtered (invalid UTF-8 included: it once aborted `--json` error output).
#include "experiments/cli/commands.hpp"
#include "fuzz_common.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

using namespace remat;

namespace {

// The value of option `name` in args[i] ("--name=value" or "--name value"), if any.
const std::string* option_value(const std::vector<std::string>& args, std::size_t i, const std::string& name,
                                std::string& scratch) {
  if (args[i] == name) return i + 1 < args.size() ? &args[i + 1] : nullptr;
  if (args[i].rfind(name + "=", 0) == 0) {
    scratch = args[i].substr(name.size() + 1);
    return &scratch;
  }
  return nullptr;
}

// Whole-text integers up to max; other text with a digit in it ("1e9", "0x40") is
// refused too, since CLI11 may read it differently from std::stoll.
bool small_integer(const std::string& text, long long max) {
  try {
    std::size_t pos = 0;
    const long long v = std::stoll(text, &pos);
    return pos == text.size() && v <= max;
  } catch (const std::exception&) {
    return text.find_first_of("0123456789") == std::string::npos;  // not a number: the CLI refuses it
  }
}

bool acceptable(const std::vector<std::string>& args) {
  bool heavy_command = false, has_model = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    // --csv, --plot, explain's --memory-csv: they write files (and --plot runs python).
    if (a.find("csv") != std::string::npos || a.find("plot") != std::string::npos) return false;
    if (a.find("file:") != std::string::npos) return false;
    if (a == "run" || a == "compare") heavy_command = true;
    if (a.rfind("uniform:n=", 0) == 0 && !small_integer(a.substr(10), 64)) return false;
    std::string scratch;
    if (const std::string* v = option_value(args, i, "--model", scratch)) {
      has_model = true;
      if (!fuzz::small_model_spec(*v, 64, 1 << 12)) return false;
    }
    if (const std::string* v = option_value(args, i, "--repeat", scratch); v && !small_integer(*v, 2)) return false;
    if (const std::string* v = option_value(args, i, "--threads", scratch); v && !small_integer(*v, 2)) return false;
    if (const std::string* v = option_value(args, i, "--dp-slots", scratch); v && !small_integer(*v, 500)) return false;
    if (const std::string* v = option_value(args, i, "--slots", scratch); v && !small_integer(*v, 64)) return false;
    if (const std::string* v = option_value(args, i, "--budgets", scratch); v && std::count(v->begin(), v->end(), ',') > 4)
      return false;
    // Every argument that parses as a model spec with a size in it is held to the
    // same limits (CLI11 may read it as some option's value in ways not traced here).
    if (a.find('=') != std::string::npos && !fuzz::small_model_spec(a, 64, 1 << 12) && a.rfind("--", 0) != 0) return false;
  }
  return !(heavy_command && !has_model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"remat"};
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    char c = static_cast<char>(data[i]);
    if (c == '\n' || c == '\0') {
      args.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) args.push_back(current);
  if (args.size() > 24 || !acceptable(args)) return 0;

  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int code = 0;
  {
    fuzz::Silence quiet;
    code = run_cli(static_cast<int>(args.size()), argv.data());
  }
  if (code != 0 && code != 2 && code != 3) __builtin_trap();
  return 0;
}
