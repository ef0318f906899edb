// Contract: eval() (autodiff/eval.hpp) on the CPU backend.
#include "autodiff/eval.hpp"

#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/executor.hpp"

#include <algorithm>

namespace remat {

HostArray eval(Value v) {
  if (!v.tape) throw Error("[eval] the value was not recorded on a tape");
  const Tape& tape = *v.tape;
  Program program;
  program.strategy = "eval";
  program.loss = tape.node(v.id).id;
  for (int id : tape.ancestors(v.id)) program.instructions.push_back({InstructionKind::compute, id});
  program = insert_frees(tape, program);
  for (int id : tape.placeholders())
    if (!tape.default_bindings().count(id) &&
        std::count(program.instructions.begin(), program.instructions.end(), Instruction{InstructionKind::compute, id}))
      throw Error("[eval] placeholder '" + tape.node(id).name + "' has no value: record it with Tape::input");
  CpuBackend backend;
  Executor executor(tape, backend);
  StepResult result = executor.run(program, tape.default_bindings());
  return std::move(*result.loss);
}

}  // namespace remat
