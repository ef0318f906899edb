// Contract: Chain validation, JSON round trips and the documented error messages,
// the uniform chain, parse_spec and the conservative rounding to memory slots.
#include "cli_harness.hpp"
#include "strategies/chain.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace remat;
using remat::testing::message_of;

namespace {

Chain sample() {
  Chain c;
  c.name = "sample";
  c.fw = {3, 1, 4};
  c.bw = {5, 9, 2, 0};
  c.cw = {6, 5, 3, 5};
  c.cbw = {6, 8, 9, 7};
  c.ftmp = {1, 0, 2};
  c.btmp = {0, 3, 1, 1};
  return c;
}

}  // namespace

TEST_CASE("chain: uniform chains follow the documented costs") {
  const Chain c = Chain::uniform(4);
  CHECK(c.length() == 4);
  CHECK(c.name == "uniform:n=4");
  CHECK(c.fw == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(c.bw == std::vector<std::int64_t>{2, 2, 2, 2, 0});
  CHECK(c.cw == std::vector<std::int64_t>{1, 1, 1, 1, 1});
  CHECK(c.cbw == std::vector<std::int64_t>{2, 2, 2, 2, 2});
  CHECK(c.ftmp == std::vector<std::int64_t>(4, 0));
  CHECK(c.btmp == std::vector<std::int64_t>(5, 0));
  CHECK_NOTHROW(c.validate());
  CHECK(message_of([] { Chain::uniform(0); }).find("[chain uniform]") == 0);
}

TEST_CASE("chain: validate names the chain and the field") {
  Chain c = sample();
  CHECK_NOTHROW(c.validate());
  c.cw.pop_back();
  CHECK(message_of([&] { c.validate(); }) == "[chain sample] cw has 3 entries, expected L+1 = 4");
  c = sample();
  c.ftmp.push_back(0);
  CHECK(message_of([&] { c.validate(); }) == "[chain sample] ftmp has 4 entries, expected L = 3");
  c = sample();
  c.bw[2] = -1;
  CHECK(message_of([&] { c.validate(); }) == "[chain sample] bw[2] = -1 is negative");
  c = sample();
  c.cbw[1] = 4;
  CHECK(message_of([&] { c.validate(); }).find("[chain sample] cbw[1] = 4 is smaller than cw[1] = 5") == 0);
  c = sample();
  c.cbw[0] = 0;  // cbw[0] is never read
  CHECK_NOTHROW(c.validate());
  Chain empty;
  CHECK(message_of([&] { empty.validate(); }).find("[chain unnamed] fw is empty") == 0);
}

TEST_CASE("chain: JSON round trip, optional temporaries and malformed files") {
  const Chain c = sample();
  const nlohmann::json j = c.to_json();
  const Chain back = Chain::from_json(j, "mem");
  CHECK(back.name == "sample");
  CHECK(back.fw == c.fw);
  CHECK(back.bw == c.bw);
  CHECK(back.cw == c.cw);
  CHECK(back.cbw == c.cbw);
  CHECK(back.ftmp == c.ftmp);
  CHECK(back.btmp == c.btmp);

  nlohmann::json minimal = {{"fw", {1, 2}}, {"bw", {1, 1, 0}}, {"cw", {4, 4, 1}}, {"cbw", {4, 6, 1}}};
  const Chain m = Chain::from_json(minimal, "file:m.json");
  CHECK(m.name == "file:m.json");
  CHECK(m.ftmp == std::vector<std::int64_t>{0, 0});
  CHECK(m.btmp == std::vector<std::int64_t>{0, 0, 0});

  auto err = [](nlohmann::json js) { return message_of([&] { Chain::from_json(js, "file:foo.json"); }); };
  CHECK(err(nlohmann::json::array()).find("[chain file:foo.json] expected a JSON object") == 0);
  nlohmann::json bad = minimal;
  bad.erase("cbw");
  CHECK(err(bad) == "[chain file:foo.json] missing field 'cbw'");
  bad = minimal;
  bad["cw"] = {4, 4, 1, 1, 1};
  CHECK(err(bad) == "[chain file:foo.json] cw has 5 entries, expected L+1 = 3");
  bad = minimal;
  bad["fw"] = "12";
  CHECK(err(bad).find("[chain file:foo.json] field 'fw' must be an array of integers") == 0);
  bad = minimal;
  bad["bw"] = {1, 1.5, 0};
  CHECK(err(bad).find("[chain file:foo.json] bw[1] must be an integer") == 0);
  bad = minimal;
  bad["cw"] = {4, -4, 1};
  CHECK(err(bad) == "[chain file:foo.json] cw[1] = -4 is negative");
  bad = minimal;
  bad["ftemp"] = {0, 0};
  CHECK(err(bad).find("[chain file:foo.json] unknown field 'ftemp'") == 0);
  bad = minimal;
  bad["name"] = 3;
  CHECK(err(bad).find("[chain file:foo.json] name must be a string") == 0);
  bad = minimal;
  bad["fw"] = nlohmann::json::array();
  bad["bw"] = {0};
  bad["cw"] = {1};
  bad["cbw"] = {1};
  CHECK(err(bad).find("[chain file:foo.json] fw is empty") == 0);
}

TEST_CASE("chain: parse_spec for uniform chains and files, with clear errors") {
  CHECK(Chain::parse_spec("uniform:n=7").length() == 7);
  CHECK(message_of([] { Chain::parse_spec("uniform:n=0"); }).find("[chain uniform:n=0] N must be an integer") == 0);
  CHECK(message_of([] { Chain::parse_spec("uniform:n=abc"); }).find("[chain uniform:n=abc] N must be") == 0);
  CHECK(message_of([] { Chain::parse_spec("uniform:n=5x"); }).find("[chain uniform:n=5x] N must be") == 0);
  CHECK(message_of([] { Chain::parse_spec("uniform:n="); }).find("[chain uniform:n=] N must be") == 0);
  CHECK(message_of([] { Chain::parse_spec("linear:n=5"); }).find("[chain linear:n=5] unknown chain spec") == 0);
  CHECK(message_of([] { Chain::parse_spec("file:/nonexistent/dir/chain.json"); })
            .find("[chain file:/nonexistent/dir/chain.json] cannot open") == 0);

  const auto dir = std::filesystem::temp_directory_path() / "remat_chain_tests";
  std::filesystem::create_directories(dir);
  const auto good = (dir / "good.json").string();
  std::ofstream(good) << sample().to_json().dump();
  const Chain c = Chain::parse_spec("file:" + good);
  CHECK(c.name == "sample");
  CHECK(c.cbw == sample().cbw);
  const auto broken = (dir / "broken.json").string();
  std::ofstream(broken) << "{\"fw\": [1, 2";
  CHECK(message_of([&] { Chain::parse_spec("file:" + broken); }).find("[chain file:" + broken + "] not valid JSON") == 0);
  const auto wrong = (dir / "wrong.json").string();
  std::ofstream(wrong) << R"({"fw": [1], "bw": [1, 0], "cw": [1, 1], "cbw": [1]})";
  CHECK(message_of([&] { Chain::parse_spec("file:" + wrong); }) ==
        "[chain file:" + wrong + "] cbw has 1 entries, expected L+1 = 2");
  std::filesystem::remove_all(dir);
}

TEST_CASE("chain: in_slots rounds every memory field up and keeps times") {
  const Chain c = sample();
  const Chain s = c.in_slots(4);
  CHECK(s.fw == c.fw);
  CHECK(s.bw == c.bw);
  CHECK(s.cw == std::vector<std::int64_t>{2, 2, 1, 2});
  CHECK(s.cbw == std::vector<std::int64_t>{2, 2, 3, 2});
  CHECK(s.ftmp == std::vector<std::int64_t>{1, 0, 1});
  CHECK(s.btmp == std::vector<std::int64_t>{0, 1, 1, 1});
  const Chain same = c.in_slots(1);
  CHECK(same.cw == c.cw);
  CHECK(same.cbw == c.cbw);
  CHECK_THROWS_AS(c.in_slots(0), Error);
}
