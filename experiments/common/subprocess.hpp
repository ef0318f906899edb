// Contract: starting child processes without a shell. Every subprocess remat starts
// (plot scripts, the PyTorch twins of the benchmarks) goes through these, with an
// argument vector: no string is ever parsed by /bin/sh, so a path such as
// "q'; touch PWNED; echo '.png" is one argument and nothing else.
//  - run_process(argv, env, stdout_path): starts argv[0] (searched on PATH when it has
//    no '/'), optionally with its standard output sent to a file, waits, and returns
//    its exit status (128 + signal when killed; 127 when it could
//    not be started). `env` entries ("NAME=value") are added to (or replace those of)
//    the parent's environment for the child only.
//  - ChildProcess: the same, with the child's stdin and stdout on pipes, for
//    line-oriented servers (send a line, read a line). Its destructor closes the
//    pipes and waits for the child.
// Errors: Error "[subprocess] ..." naming the program when a pipe or spawn fails.
#pragma once

#include "autodiff/tensor.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace remat {

namespace subprocess_detail {

// The parent's environment with `extra` ("NAME=value") added or replacing entries.
inline std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& x : extra) replaced |= x.substr(0, x.find('=')) == name;
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

inline std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

inline int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 127;
}

}  // namespace subprocess_detail

// `stdout_path`, when not empty, becomes the child's standard output (opened for writing).
inline int run_process(std::vector<std::string> argv, const std::vector<std::string>& env = {},
                       const std::string& stdout_path = {}) {
  if (argv.empty()) throw Error("[subprocess] no program to run");
  std::vector<std::string> environment = subprocess_detail::merged_environment(env);
  auto args = subprocess_detail::c_strings(argv);
  auto envp = subprocess_detail::c_strings(environment);
  pid_t pid = -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!stdout_path.empty()) posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 127;
  return subprocess_detail::exit_status(status);
}

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, const std::vector<std::string>& env = {}) : program_(argv.at(0)) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0) throw Error("[subprocess] pipe failed for " + program_ + ": " + std::strerror(errno));
    if (pipe(from_child) != 0) {
      close(to_child[0]);
      close(to_child[1]);
      throw Error("[subprocess] pipe failed for " + program_ + ": " + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) posix_spawn_file_actions_addclose(&actions, fd);
    std::vector<std::string> environment = subprocess_detail::merged_environment(env);
    auto args = subprocess_detail::c_strings(argv);
    auto envp = subprocess_detail::c_strings(environment);
    int rc = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (rc != 0) {
      close(to_child[1]);
      close(from_child[0]);
      pid_ = -1;
      throw Error("[subprocess] cannot start " + program_ + ": " + std::strerror(rc));
    }
    to_ = fdopen(to_child[1], "w");
    from_ = fdopen(from_child[0], "r");
  }
  ~ChildProcess() {
    if (to_) std::fclose(to_);
    if (from_) std::fclose(from_);
    if (pid_ > 0) {
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Sends `line` (when not null) and returns the child's next line, without its newline;
  // throws Error when the child closed its output first.
  std::string ask(const char* line) {
    if (line) {
      std::fputs(line, to_);
      std::fputc('\n', to_);
      std::fflush(to_);
    }
    std::string answer;
    char buffer[1 << 12];
    while (std::fgets(buffer, sizeof buffer, from_)) {
      answer += buffer;
      if (!answer.empty() && answer.back() == '\n') break;
    }
    if (answer.empty())
      throw Error("[subprocess] " + program_ + " ended before answering '" + (line ? line : "(ready)") +
                  "' (its errors are above)");
    while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
    return answer;
  }

 private:
  std::string program_;
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

}  // namespace remat
