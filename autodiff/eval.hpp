// Contract: eval(v), the teaching shortcut that computes one recorded value on
// demand: store-all on the CPU backend, from the tape's default bindings
// (Tape::input) and its parameters' initial values. Recording never computes;
// this is the one place that runs a tape outside an Executor the user made.
#pragma once

#include "autodiff/tape.hpp"

namespace remat {

// The value of v. Errors: "[eval] ..." when v has no tape or a placeholder it
// depends on has no default binding.
HostArray eval(Value v);

}  // namespace remat
