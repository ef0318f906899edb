#!/usr/bin/env python3
"""Contract: exports torchvision CNNs and two small transformers with random weights
(no download) to ONNX files that `remat ... --onnx PATH` loads: opset 13, training mode
(batch norm on batch statistics, its running statistics kept as remat op state), no
constant folding, static shapes, input named "input" and output "logits". Dropout is
exported with p=0 unless --keep-dropout (remat then draws its own Philox masks, which
differ from PyTorch's).

    /usr/bin/python3 scripts/export_models.py --out models_onnx [--batch 2] [--image 64]
        [--models resnet18,resnet50,vgg16,mobilenet_v2,densenet121,gpt2_tiny,vit_tiny]

gpt2_tiny (TinyGpt below) is a GPT-2-style decoder: token and position embeddings,
pre-norm blocks of causal self-attention (a constant lower-triangular mask applied with
masked_fill) and a GELU MLP, a final layer norm and a head tied to the token embedding;
its input is int64 token ids (batch, --context) and its output the logits reshaped to
(batch * context, vocab), so remat's default cross-entropy loss is the language-model
loss against labels (batch * context). vit_tiny is torchvision's VisionTransformer class
at small sizes (patch 8, 2 layers, 4 heads, width 32) on --image inputs, with its
zero-initialised head drawn at random (a zero head zeroes every gradient below it).

vgg16's classifier wants a 7x7 feature map (its adaptive pooling exports only when the
input divides evenly), so it is exported at --vgg-image (default 224)."""

import argparse
import pathlib
import sys
import time
import warnings

DEFAULT_MODELS = "resnet18,resnet50,vgg16,mobilenet_v2,densenet121,gpt2_tiny,vit_tiny"


def transformer_classes():
    """TinyGpt, defined when torch is importable (tests import it from here)."""
    import math

    import torch
    from torch import nn

    class CausalSelfAttention(nn.Module):
        def __init__(self, dim, heads, context):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.register_buffer("mask", torch.tril(torch.ones(context, context)).view(1, 1, context, context))

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(c, dim=2)
            q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.heads))
            att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
            att = torch.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
            return self.proj(y)

    class Block(nn.Module):
        def __init__(self, dim, heads, context):
            super().__init__()
            self.ln1 = nn.LayerNorm(dim)
            self.attn = CausalSelfAttention(dim, heads, context)
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class TinyGpt(nn.Module):
        def __init__(self, vocab=64, context=16, dim=32, heads=4, layers=2, tied=True):
            super().__init__()
            self.wte = nn.Embedding(vocab, dim)
            self.wpe = nn.Embedding(context, dim)
            self.blocks = nn.ModuleList([Block(dim, heads, context) for _ in range(layers)])
            self.ln_f = nn.LayerNorm(dim)
            self.head = None if tied else nn.Linear(dim, vocab, bias=False)

        def forward(self, idx):
            b, t = idx.shape
            pos = torch.arange(t, dtype=torch.long, device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.blocks:
                x = block(x)
            x = self.ln_f(x)
            logits = nn.functional.linear(x, self.wte.weight) if self.head is None else self.head(x)
            return logits.reshape(b * t, -1)

    return TinyGpt


def vit_tiny(image, classes):
    import torchvision

    import torch

    model = torchvision.models.VisionTransformer(image_size=image, patch_size=8, num_layers=2, num_heads=4,
                                                 hidden_dim=32, mlp_dim=64, num_classes=classes)
    # torchvision zero-initialises the head, which zeroes every gradient below it: draw it.
    torch.nn.init.normal_(model.heads.head.weight, std=0.2)
    return model


def build_model(name, image, classes, context=16):
    """(model, example input) for one of DEFAULT_MODELS, random weights from seed 0."""
    import torch
    import torchvision

    torch.manual_seed(0)
    if name == "gpt2_tiny":
        model = transformer_classes()(vocab=classes, context=context)
        return model, torch.randint(0, classes, (2, context), generator=torch.Generator().manual_seed(1))
    if name == "vit_tiny":
        model = vit_tiny(image, classes)
    else:
        model = getattr(torchvision.models, name)(weights=None, num_classes=classes)
    return model, torch.randn(2, 3, image, image, generator=torch.Generator().manual_seed(1))


def export(name, out_dir, batch, image, keep_dropout, classes, context):
    import torch

    model, x = build_model(name, image, classes, context)
    if not keep_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    model.train()
    x = x[:1].repeat(batch, *[1] * (x.dim() - 1))
    path = out_dir / f"{name}.onnx"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Removing mutation from node aten::add_ ... num_batches_tracked"
        torch.onnx.export(model, x, str(path), opset_version=13, training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, input_names=["input"], output_names=["logits"])
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {path} ({params / 1e6:.1f}M parameters, input {tuple(x.shape)}, "
          f"{time.perf_counter() - start:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the .onnx files (created)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated torchvision names ({DEFAULT_MODELS})")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--vgg-image", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--context", type=int, default=16, help="gpt2_tiny's sequence length")
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
            export(name, out_dir, args.batch, image, args.keep_dropout, args.classes, args.context)
        except AttributeError:
            sys.exit(f"export_models: torchvision has no model '{name}'")


if __name__ == "__main__":
    main()
