// Contract: what the CLI tests share: cli(args) runs `remat ARGS...` in-process
// through run_cli with std::cout and std::cerr captured, and returns the exit code
// and both streams; ScratchDir is a temporary folder removed at the end of a test;
// message_of(f) is the message of what f throws ("(no error)" when it returns).
#pragma once

#ifdef REMAT_HAVE_CLI
#include "experiments/cli/commands.hpp"
#endif

#include <exception>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace remat::testing {

inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs `remat ARGS...` in-process with stdout and stderr captured.
struct CliOutcome {
  int code = -1;
  std::string out, err;
};

#ifdef REMAT_HAVE_CLI
class Capture {
 public:
  Capture() : old_out_(std::cout.rdbuf(out_.rdbuf())), old_err_(std::cerr.rdbuf(err_.rdbuf())) {}
  ~Capture() {
    std::cout.rdbuf(old_out_);
    std::cerr.rdbuf(old_err_);
  }
  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }

 private:
  std::ostringstream out_, err_;
  std::streambuf* old_out_;
  std::streambuf* old_err_;
};

inline CliOutcome cli(std::vector<std::string> args) {
  args.insert(args.begin(), "remat");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  CliOutcome o;
  Capture capture;
  o.code = run_cli(static_cast<int>(args.size()), argv.data());
  o.out = capture.out();
  o.err = capture.err();
  return o;
}
#endif

// A scratch folder, removed at the end of the test case (one per live object).
struct ScratchDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("remat_tests_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
  ScratchDir() { std::filesystem::create_directories(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

}  // namespace remat::testing
