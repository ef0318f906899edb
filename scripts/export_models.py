#!/usr/bin/env python3
"""Contract: exports torchvision CNNs with random weights (no download) to ONNX files
that `remat ... --onnx PATH` loads: opset 13, training mode (batch norm on batch
statistics, its running statistics kept as remat op state), no constant folding, static
shapes, input named "input" and output "logits". Dropout is exported with p=0 unless
--keep-dropout (remat then draws its own Philox masks, which differ from PyTorch's).

    /usr/bin/python3 scripts/export_models.py --out models_onnx [--batch 2] [--image 64]
        [--models resnet18,resnet50,vgg16,mobilenet_v2,densenet121]

vgg16's classifier wants a 7x7 feature map (its adaptive pooling exports only when the
input divides evenly), so it is exported at --vgg-image (default 224)."""

import argparse
import pathlib
import sys
import time
import warnings

DEFAULT_MODELS = "resnet18,resnet50,vgg16,mobilenet_v2,densenet121"


def export(name, out_dir, batch, image, keep_dropout, classes):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=classes)
    if not keep_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    model.train()
    x = torch.randn(batch, 3, image, image)
    path = out_dir / f"{name}.onnx"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Removing mutation from node aten::add_ ... num_batches_tracked"
        torch.onnx.export(model, x, str(path), opset_version=13, training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, input_names=["input"], output_names=["logits"])
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {path} ({params / 1e6:.1f}M parameters, input ({batch}, 3, {image}, {image}), "
          f"{time.perf_counter() - start:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the .onnx files (created)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated torchvision names ({DEFAULT_MODELS})")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--vgg-image", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--keep-dropout", action="store_true")
    args = parser.parse_args()
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.exit("export_models: needs PyTorch and torchvision (scripts/install_deps.sh installs Debian's)")
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in [m for m in args.models.split(",") if m]:
        image = args.vgg_image if name.startswith("vgg") else args.image
        try:
            export(name, out_dir, args.batch, image, args.keep_dropout, args.classes)
        except AttributeError:
            sys.exit(f"export_models: torchvision has no model '{name}'")


if __name__ == "__main__":
    main()
