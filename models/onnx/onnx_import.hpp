// Contract: ONNX import. load_onnx() reads an ONNX model (the protobuf schema and
// checker of Debian's libonnx) and records it on a remat Tape, as a Model that the
// CLI, the tests and the benchmarks treat like a zoo model:
//  - every float initializer that an op reads as a tensor becomes a parameter named
//    after the initializer; BatchNormalization's running mean and variance become
//    the batchnorm op's state (updated once per step, ONNX momentum m -> remat 1 - m);
//  - every graph input that is not an initializer becomes a placeholder with its
//    static shape (a symbolic dimension is an error);
//  - a loss on the first graph output: cross-entropy against i32 labels (placeholder
//    "labels", shape (N)), mse against a target (placeholder "target", the output's
//    shape) or sum. The default is cross-entropy for a rank-2 output, sum otherwise;
//  - subgraphs that compute on constants only (Shape of a static value, Gather,
//    Unsqueeze, Concat, ConstantOfShape, Expand, Equal, Where, Cast, arithmetic) are
//    folded at load time; a Pad in front of Conv/MaxPool/AveragePool is folded into
//    the consumer's padding when that is exactly the same computation.
// Anything else is refused with an Error naming the node, its op type and the
// attribute ("[onnx] node 'conv1' (Conv): attribute 'auto_pad'=SAME_UPPER is not
// supported"): never a silently different model.
#pragma once

#include "models/models.hpp"

#include <string>
#include <map>
#include <vector>

namespace remat {

struct OnnxImportOptions {
  std::string loss = "auto";  // auto, cross-entropy, mse or sum
};

struct OnnxModel {
  Model model;  // spec "onnx:PATH", tape, loss, synthetic batches (uniform inputs, random labels)
  // Parameter node id -> ONNX initializer name, in recording order.
  std::vector<std::pair<int, std::string>> parameter_names;
  // Placeholder node id -> graph input name (and "labels" or "target" for the loss).
  std::vector<std::pair<int, std::string>> input_names;
  Value output;  // the graph's first output, before the loss
};

OnnxModel load_onnx(const std::string& path, const OnnxImportOptions& options = {});

}  // namespace remat

namespace remat {

// The bindings of --inputs "name=x.npy,labels=y.npy": each name is a graph input (or
// "labels"/"target"), each file a C-order .npy of the placeholder's shape and dtype
// (float32, or int32 for labels and integer inputs); inputs not named keep `base`.
Bindings bind_npy_inputs(const OnnxModel& model, const std::string& list, Bindings base);

// Writes one DIR/<initializer>.npy per parameter gradient ('/' in a name becomes '_');
// the folder must exist. Returns the number of files written.
int save_gradients_npy(const OnnxModel& model, const std::map<int, HostArray>& gradients, const std::string& dir);

}  // namespace remat
