// Contract: finite-difference gradient checks (f64, relative error < 1e-6) for the
// elementwise, reduction, linear-algebra and shape ops, broadcasting included,
// and the documented shape-error messages.
#include "gradcheck.hpp"

#include <doctest/doctest.h>

using namespace remat;
using remat::testing::gradcheck;
using remat::testing::random_array;
using remat::testing::random_away_from_zero;

namespace {
constexpr double tolerance = 1e-6;
using Unary = Value (*)(Value);
}

TEST_CASE("unary ops match finite differences") {
  struct Case { const char* name; Unary f; HostArray x; };
  std::vector<Case> cases{
      {"neg", neg, random_array({3, 4}, 1)},
      {"exp", exp, random_array({3, 4}, 2)},
      {"log", log, random_array({3, 4}, 3, 0.5, 2.0)},
      {"tanh", tanh, random_array({3, 4}, 4)},
      {"sigmoid", sigmoid, random_array({3, 4}, 5)},
      {"relu", relu, random_away_from_zero({3, 4}, 6)},
      {"gelu", gelu, random_array({3, 4}, 7, -3, 3)},
      {"erf", erf, random_array({3, 4}, 13, -2, 2)},
      {"square", square, random_array({3, 4}, 8)},
  };
  for (auto& c : cases) {
    CAPTURE(c.name);
    auto r = gradcheck({c.x}, [&](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return c.f(p[0]); });
    CHECK(r.checked == 12);
    CHECK(r.max_relative_error < tolerance);
  }
  auto pw = gradcheck({random_array({5}, 9, 0.5, 2.0)},
                      [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return pow(p[0], 2.5); });
  CHECK(pw.max_relative_error < tolerance);
  auto sc = gradcheck({random_array({5}, 10)},
                      [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return scale(p[0], -3.0); });
  CHECK(sc.max_relative_error < tolerance);
}

TEST_CASE("binary ops with NumPy broadcasting match finite differences") {
  using Binary = Value (*)(Value, Value);
  std::vector<std::pair<const char*, Binary>> ops{{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}};
  std::vector<std::pair<Shape, Shape>> shapes{{{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}},
                                              {{2, 3, 4}, {3, 1}}, {{}, {2, 3}}, {{2, 1, 4}, {2, 3, 1}}};
  for (auto [name, f] : ops)
    for (auto& [sa, sb] : shapes) {
      CAPTURE(name);
      CAPTURE(shape_string(sa));
      CAPTURE(shape_string(sb));
      auto r = gradcheck({random_array(sa, 11), random_array(sb, 12, 0.5, 1.5)},
                         [f](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return f(p[0], p[1]); });
      CHECK(r.max_relative_error < tolerance);
    }
}

TEST_CASE("a value used twice accumulates both gradient contributions") {
  auto r = gradcheck({random_array({4}, 13)},
                     [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) {
                       return add(mul(p[0], p[0]), tanh(p[0]));
                     });
  CHECK(r.max_relative_error < tolerance);
}

TEST_CASE("reductions match finite differences") {
  for (bool keep : {false, true}) {
    for (std::vector<int> axes : {std::vector<int>{}, {0}, {1}, {-1}, {0, 2}}) {
      CAPTURE(keep);
      CAPTURE(axes.size());
      auto s = gradcheck({random_array({2, 3, 4}, 14)}, [&](Tape&, const std::vector<Value>& p, const std::vector<Value>&) {
        return sum(p[0], axes, keep);
      });
      CHECK(s.max_relative_error < tolerance);
      auto m = gradcheck({random_array({2, 3, 4}, 15)}, [&](Tape&, const std::vector<Value>& p, const std::vector<Value>&) {
        return mean(p[0], axes, keep);
      });
      CHECK(m.max_relative_error < tolerance);
      auto x = gradcheck({random_array({2, 3, 4}, 16)}, [&](Tape&, const std::vector<Value>& p, const std::vector<Value>&) {
        return max(p[0], axes, keep);
      });
      CHECK(x.max_relative_error < tolerance);
    }
  }
}

TEST_CASE("matmul and linear match finite differences") {
  auto mm = gradcheck({random_array({3, 5}, 17), random_array({5, 4}, 18)},
                      [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return matmul(p[0], p[1]); });
  CHECK(mm.max_relative_error < tolerance);
  auto batched = gradcheck({random_array({2, 3, 5}, 19), random_array({2, 5, 4}, 20)},
                           [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return matmul(p[0], p[1]); });
  CHECK(batched.max_relative_error < tolerance);
  auto shared = gradcheck({random_array({2, 3, 5}, 21), random_array({5, 4}, 22)},
                          [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return matmul(p[0], p[1]); });
  CHECK(shared.max_relative_error < tolerance);
  auto lin = gradcheck({random_array({4, 5}, 23), random_array({3, 5}, 24), random_array({3}, 25)},
                       [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return linear(p[0], p[1], p[2]); });
  CHECK(lin.max_relative_error < tolerance);
  auto lin3 = gradcheck({random_array({2, 4, 5}, 26), random_array({3, 5}, 27)},
                        [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return linear(p[0], p[1]); });
  CHECK(lin3.max_relative_error < tolerance);
}

TEST_CASE("shape ops match finite differences") {
  auto check = [](HostArray x, std::function<Value(Value)> f) {
    auto r = gradcheck({std::move(x)}, [&](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return f(p[0]); });
    CHECK(r.max_relative_error < tolerance);
  };
  check(random_array({2, 6}, 28), [](Value x) { return reshape(x, {3, -1}); });
  check(random_array({2, 3, 4}, 29), [](Value x) { return permute(x, {2, 0, 1}); });
  check(random_array({2, 3, 4}, 30), [](Value x) { return transpose(x); });
  check(random_array({4, 5}, 31), [](Value x) { return slice(x, 1, 1, 4); });
  check(random_array({4, 5}, 32), [](Value x) { return slice(x, 0, 2, 4); });
  auto cat = gradcheck({random_array({2, 3}, 33), random_array({2, 2}, 34)},
                       [](Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return concat({p[0], p[1]}, 1); });
  CHECK(cat.max_relative_error < tolerance);
}

TEST_CASE("shape errors name the op and the shapes") {
  Tape tape;
  auto a = tape.placeholder("a", {{64, 128}, DType::f32});
  auto b = tape.placeholder("b", {{256, 32}, DType::f32});
  CHECK_THROWS_WITH_AS(matmul(a, b), "[matmul] inner dimensions differ: (64,128) @ (256,32)", Error);
  auto c = tape.placeholder("c", {{3, 4}, DType::f32});
  auto d = tape.placeholder("d", {{5}, DType::f32});
  CHECK_THROWS_WITH_AS(add(c, d), "[add] shapes do not broadcast: (3,4) and (5,)", Error);
  CHECK_THROWS_WITH_AS(reshape(c, {5, 2}), "[reshape] cannot reshape (3,4) into (5,2)", Error);
  CHECK_THROWS_WITH_AS(sum(c, {2}), "[sum] axis 2 is out of range for shape (3,4)", Error);
  auto w = tape.placeholder("w", {{7, 5}, DType::f32});
  CHECK_THROWS_WITH_AS(linear(c, w),
                       "[linear] input features differ from weight: x (3,4), W (7,5) (expected W of shape (out, in))", Error);
  auto e = tape.placeholder("e", {{3, 4}, DType::f64});
  CHECK_THROWS_WITH_AS(mul(c, e), "[mul] inputs have different dtypes: f32 and f64", Error);
}
