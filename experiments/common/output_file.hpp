// Contract: an output file of a command, checked before any compute so that a missing
// folder, a directory or an unwritable path fails first ("[compare] cannot write
// --csv 'out/x.csv': No such file or directory"), and written at the end with every
// write checked ("[compare] writing --csv '/dev/full' failed: No space left on
// device"). The check opens the path for appending (an existing file keeps its
// content until the command has something to write; a file the check had to create
// is removed again), so a command that fails halfway destroys nothing. An empty path
// means no output: the object is then false and open()/close() do nothing.
#pragma once

#include "autodiff/tensor.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace remat {

class OutputFile {
 public:
  OutputFile(std::string command, std::string flag, std::string path)
      : command_(std::move(command)), flag_(std::move(flag)), path_(std::move(path)) {
    if (path_.empty()) return;
    std::error_code ec;
    if (std::filesystem::is_directory(path_, ec)) fail("cannot write", "it is a directory");
    const bool existed = std::filesystem::exists(path_, ec);
    errno = 0;
    std::ofstream probe(path_, std::ios::binary | std::ios::app);
    if (!probe) fail("cannot write", errno ? std::strerror(errno) : "cannot open");
    probe.close();
    if (!existed && !std::filesystem::is_character_file(path_, ec)) std::filesystem::remove(path_, ec);
  }
  explicit operator bool() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // Truncates and opens the file for the command's output.
  std::ostream& open() {
    if (path_.empty()) return out_;
    errno = 0;
    out_.open(path_, std::ios::binary | std::ios::trunc);
    if (!out_) fail("cannot write", errno ? std::strerror(errno) : "cannot open");
    return out_;
  }
  std::ostream& stream() { return out_; }
  void close() {
    if (path_.empty() || !out_.is_open()) return;
    errno = 0;
    out_.flush();
    const bool flushed = static_cast<bool>(out_);
    out_.close();
    if (!flushed || !out_) fail("writing", errno ? std::strerror(errno) : "write error");
  }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& why) {
    throw Error("[" + command_ + "] " + what + " " + flag_ + " '" + path_ + "'" + (what == "writing" ? " failed" : "") +
                ": " + why);
  }
  std::string command_, flag_, path_;
  std::ofstream out_;
};

}  // namespace remat
