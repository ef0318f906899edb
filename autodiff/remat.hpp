// Contract: the one header a user includes for the autodiff core.
#pragma once

#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/cpu/low_precision_backend.hpp"
#include "autodiff/eval.hpp"
#include "autodiff/costs.hpp"
#include "autodiff/executor.hpp"
#include "autodiff/memory_policy.hpp"
#include "autodiff/metering_backend.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/program.hpp"
#include "autodiff/promises.hpp"
#include "autodiff/strategy.hpp"
#include "autodiff/training_memory.hpp"
#include "autodiff/tape.hpp"
#include "autodiff/tensor.hpp"
