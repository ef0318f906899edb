// Contract: `heat`, explicit time stepping of the 1-D heat equation
// u_t = kappa u_xx on a periodic grid of `grid` points:
//   u(k+1) = u(k) + r (u(k)[i-1] - 2 u(k)[i] + u(k)[i+1]),  r = kappa dt / dx^2,
// stable for r <= 1/2 (the default r = 0.25). The initial condition u(0) is the
// parameter; the loss is mse(u(steps), target), so the gradient is the discrete
// adjoint, the classic use of Revolve (Griewank and Walther 2000). Each step is
// one marked stage: a uniform chain.
// equation=burgers adds the advection term of the viscous Burgers equation,
//   - (c/2) u(k)[i] (u(k)[i+1] - u(k)[i-1]),  c = dt/dx (default 0.1),
// which is nonlinear: its vjp reads u(k), so every step keeps a value for the
// backward sweep, the setting where checkpointing pays (the linear heat step's
// vjps read nothing, so store-all keeps almost nothing there).
#include "models/options.hpp"

#include <cmath>
#include <numbers>

namespace remat::zoo {

Model build_heat(const ModelSpec& spec) {
  Options o(spec);
  auto steps = o.integer("steps", 100);
  o.limit_nodes("steps", steps, 14);
  auto grid = o.integer("grid", 64, 3, 1 << 24);
  auto r_percent = o.integer("r", 25, 1, 50);  // r in hundredths
  bool burgers = o.choice("equation", "heat", {"heat", "burgers"}) == "burgers";
  auto c_percent = o.integer("c", 10, 1, 50);  // c = dt/dx in hundredths (Burgers only)
  DType dtype = parse_dtype(o);
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  const double r = static_cast<double>(r_percent) / 100.0;
  HostArray u0(TensorMeta{{1, grid}, dtype});
  for (std::int64_t i = 0; i < grid; ++i) u0.set(i, std::sin(2 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(grid)));
  Value u = t.parameter("u0", u0);
  for (std::int64_t k = 0; k < steps; ++k) {
    // Periodic neighbours as rotations built from slices.
    Value left = concat({slice(u, 1, grid - 1, grid), slice(u, 1, 0, grid - 1)}, 1);   // u[i-1]
    Value right = concat({slice(u, 1, 1, grid), slice(u, 1, 0, 1)}, 1);                // u[i+1]
    Value laplacian = sub(add(left, right), scale(u, 2.0));
    Value next = add(u, scale(laplacian, r));
    if (burgers) next = sub(next, scale(mul(u, sub(right, left)), static_cast<double>(c_percent) / 200.0));
    u = next;
    t.mark_stage(u);
    m.stage_outputs.push_back(u);
  }
  Value target = t.placeholder("target", {{1, grid}, dtype});
  m.loss = mse(u, target);
  m.batch = [ti = target.id, grid, dtype](std::uint64_t step) {
    Bindings bd;
    bd[ti] = uniform_data({1, grid}, dtype, 13 * step + 1);
    return bd;
  };
  return m;
}

}  // namespace remat::zoo
