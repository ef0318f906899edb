// Contract: what every paper driver shares apart from running models (bench.hpp):
//  - parse_driver_options(): the common command line (--quick, --out DIR, --no-plot,
//    --repeat N, --help); bad arguments throw Error "[<paper>] ...".
//  - Table: named columns, rows of cells (empty, integer, real, text, bool), written
//    as CSV (header row, RFC 4180 quoting) and as JSON (an array of objects).
//  - write_results(): <out>/<name>.csv and <out>/<name>.json ({"meta": ..., "rows": [...]}).
//  - median(), fit_power_law() (least squares of log y on log x: y = prefactor * x^exponent).
//  - run_plot(): /usr/bin/python3 SCRIPT OUT_DIR; a failure is an Error naming the script.
//  - broken_promises(): a process-wide count of broken promises, which drivers turn
//    into their exit status (4, as `remat run`).
// Header-only so that tests/papers_tests.cpp can check it without linking a driver.
#pragma once

#include "autodiff/remat.hpp"
#include "experiments/common/subprocess.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <variant>
#include <vector>

namespace remat::papers {

struct DriverOptions {
  std::string paper;              // e.g. "chen2016": prefixes every message
  std::filesystem::path out;      // results/<paper> unless --out DIR
  bool quick = false;             // tiny sizes: the ctest smoke test
  bool plot = true;               // --no-plot skips the python figure
  int repeat = 5;                 // timed rounds per program (medians); --quick uses 2
  std::vector<std::string> onnx;  // --onnx PATH (repeatable): real models, for the drivers that take them
};

inline DriverOptions parse_driver_options(int argc, char** argv, const std::string& paper, const std::string& about) {
  DriverOptions o;
  o.paper = paper;
  o.out = std::filesystem::path("results") / paper;
  bool repeat_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(fmt::format("[{}] {} needs a value", paper, arg));
      return argv[++i];
    };
    if (arg == "--quick") {
      o.quick = true;
    } else if (arg == "--out") {
      o.out = value();
    } else if (arg == "--no-plot") {
      o.plot = false;
    } else if (arg == "--repeat") {
      std::string v = value();
      try {
        std::size_t pos = 0;
        o.repeat = std::stoi(v, &pos);
        if (pos != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        throw Error(fmt::format("[{}] --repeat expects a positive integer, got '{}'", paper, v));
      }
      if (o.repeat < 1) throw Error(fmt::format("[{}] --repeat expects a positive integer, got '{}'", paper, v));
      repeat_given = true;
    } else if (arg == "--onnx") {
      o.onnx.push_back(value());
    } else if (arg == "--help" || arg == "-h") {
      std::cout << about << "\n\nOptions:\n"
                << "  --quick      tiny sizes (a few seconds): the smoke test\n"
                << "  --out DIR    where CSV, JSON and PNG files go (default results/" << paper << ")\n"
                << "  --no-plot    do not call the plot script\n"
                << "  --repeat N   timed rounds per program; times are medians (default 5, 2 with --quick)\n"
                << "  --onnx PATH  also run on this ONNX model (scripts/export_models.py; repeatable;\n"
                << "               chen2016 and kirisame2021 take real models, the other drivers refuse it)\n";
      std::exit(0);
    } else {
      throw Error(fmt::format("[{}] unknown argument '{}' (try --help)", paper, arg));
    }
  }
  if (o.quick && !repeat_given) o.repeat = 2;
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) throw Error(fmt::format("[{}] cannot create output folder '{}': {}", paper, o.out.string(), ec.message()));
  return o;
}

// ---- tables ----

using Cell = std::variant<std::monostate, std::int64_t, double, std::string, bool>;

class Table {
 public:
  explicit Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}

  void add(std::vector<Cell> row) {
    if (row.size() != columns_.size())
      throw Error(fmt::format("[table] a row has {} cells for {} columns", row.size(), columns_.size()));
    rows_.push_back(std::move(row));
  }
  const std::vector<std::string>& columns() const { return columns_; }
  const std::vector<std::vector<Cell>>& rows() const { return rows_; }
  std::size_t size() const { return rows_.size(); }

  static std::string csv_cell(const Cell& c) {
    struct Visitor {
      std::string operator()(std::monostate) const { return ""; }
      std::string operator()(std::int64_t v) const { return std::to_string(v); }
      std::string operator()(double v) const { return std::isfinite(v) ? fmt::format("{:.9g}", v) : ""; }
      std::string operator()(bool v) const { return v ? "true" : "false"; }
      std::string operator()(const std::string& s) const {
        if (s.find_first_of(",\"\n") == std::string::npos) return s;
        std::string q(1, '"');
        for (char ch : s) {
          q += ch;
          if (ch == '"') q += '"';
        }
        q += '"';
        return q;
      }
    };
    return std::visit(Visitor{}, c);
  }
  static nlohmann::json json_cell(const Cell& c) {
    struct Visitor {
      nlohmann::json operator()(std::monostate) const { return nullptr; }
      nlohmann::json operator()(std::int64_t v) const { return v; }
      nlohmann::json operator()(double v) const { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
      nlohmann::json operator()(bool v) const { return v; }
      nlohmann::json operator()(const std::string& s) const { return s; }
    };
    return std::visit(Visitor{}, c);
  }

  std::string to_csv() const {
    std::string s;
    auto line = [&s](const auto& cells) {
      for (std::size_t k = 0; k < cells.size(); ++k) {
        if (k) s += ',';
        s += csv_cell(cells[k]);
      }
      s += '\n';
    };
    line(columns_);
    for (const auto& row : rows_) line(row);
    return s;
  }
  nlohmann::json to_json() const {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : rows_) {
      nlohmann::json r = nlohmann::json::object();
      for (std::size_t k = 0; k < row.size(); ++k) r[columns_[k]] = json_cell(row[k]);
      rows.push_back(std::move(r));
    }
    return rows;
  }

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<Cell>> rows_;
};

inline void write_text(const std::filesystem::path& path, const std::string& text, const std::string& source) {
  std::ofstream f(path);
  if (!f) throw Error(fmt::format("[{}] cannot write '{}'", source, path.string()));
  f << text;
  if (!f) throw Error(fmt::format("[{}] writing '{}' failed", source, path.string()));
}

// <out>/<name>.csv and <out>/<name>.json; `meta` describes the run (sizes, threads, ...).
inline void write_results(const DriverOptions& o, const std::string& name, const Table& table,
                          const nlohmann::json& meta = nlohmann::json::object()) {
  write_text(o.out / (name + ".csv"), table.to_csv(), o.paper);
  nlohmann::json j{{"paper", o.paper}, {"table", name}, {"quick", o.quick}, {"meta", meta}, {"rows", table.to_json()}};
  write_text(o.out / (name + ".json"), j.dump(1) + "\n", o.paper);
  std::cerr << fmt::format("[{}] wrote {}.csv and {}.json ({} rows)\n", o.paper, (o.out / name).string(), name, table.size());
}

// ---- statistics ----

inline double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct PowerFit {
  double exponent = 0, prefactor = 0, r_squared = 0;
  int points = 0;
};

// Least squares of log(y) = log(prefactor) + exponent * log(x) over points with x, y > 0.
inline PowerFit fit_power_law(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) throw Error("[fit] x and y have different lengths");
  std::vector<double> lx, ly;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (x[i] > 0 && y[i] > 0) {
      lx.push_back(std::log(x[i]));
      ly.push_back(std::log(y[i]));
    }
  const double n = static_cast<double>(lx.size());
  if (lx.size() < 2) throw Error("[fit] a power law needs at least two positive points");
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) mx += lx[i] / n, my += ly[i] / n;
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) {
    sxx += (lx[i] - mx) * (lx[i] - mx);
    sxy += (lx[i] - mx) * (ly[i] - my);
    syy += (ly[i] - my) * (ly[i] - my);
  }
  if (sxx == 0) throw Error("[fit] all x values are equal");
  PowerFit f;
  f.exponent = sxy / sxx;
  f.prefactor = std::exp(my - f.exponent * mx);
  f.r_squared = syy == 0 ? 1.0 : (sxy * sxy) / (sxx * syy);
  f.points = static_cast<int>(lx.size());
  return f;
}

// ---- promises and plots ----

inline int& broken_promises() {
  static int count = 0;
  return count;
}

// Exit status of a driver: 4 when a promise broke (as `remat run`), else 0.
inline int exit_status(const DriverOptions& o) {
  if (broken_promises() > 0) {
    std::cerr << fmt::format("[{}] {} promise(s) broken: see the messages above\n", o.paper, broken_promises());
    return 4;
  }
  return 0;
}

inline void run_plot(const DriverOptions& o, const std::string& script) {
  if (!o.plot) return;
  int rc = run_process({"/usr/bin/python3", script, o.out.string()});
  if (rc != 0)
    throw Error(fmt::format("[{}] the plot script failed (exit {}): /usr/bin/python3 {} {} (is python3-matplotlib "
                            "installed? ./scripts/install_deps.sh installs it; --no-plot skips the figure)",
                            o.paper, rc, script, o.out.string()));
  std::cerr << fmt::format("[{}] figures in {}\n", o.paper, o.out.string());
}

// A driver's main(): runs `body` and turns any exception into a message on stderr
// prefixed with the paper (unless it already is) and exit status 2.
inline int guarded_main(const std::string& paper, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (message.rfind("[" + paper + "]", 0) != 0) message = "[" + paper + "] " + message;
    std::cerr << message << "\n";
    return 2;
  }
}

}  // namespace remat::papers
