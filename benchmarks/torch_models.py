#!/usr/bin/python3
"""Contract: the PyTorch side of models_bench. Builds the PyTorch twin of one remat zoo
model from its SPEC (models/*.cpp: the same layers, shapes, parameter set and activation
definitions; remat's gelu is the tanh approximation, F.gelu(approximate="tanh")) and
times one training step (forward + backward, no optimizer) in two modes:
  none   plain autograd, every activation kept (the twin of remat's store-all)
  ckpt   torch.utils.checkpoint.checkpoint_sequential over the model's blocks with
         --segments segments (the twin of remat's sqrt); the embedding/stem before the
         blocks and the head after them run outside it.
The models: mlp, resmlp, lstm, transformer, resnet, unet (unet has no block chain: its
skip connections cross every level, so only "none" is offered), and
torchvision:model=NAME,batch=B,image=I[,classes=C,context=T], the module that
scripts/export_models.py exports for remat's ONNX import (resnet18, resnet50,
mobilenet_v2, densenet121, gpt2_tiny, vit_tiny), whose top-level layers form the chain.

Protocol (models_bench drives it, so that its steps and remat's interleave in time):
after --warmup steps of each mode it prints one JSON line {"ready": true, "parameters": N,
"modes": [...]}; then each stdin line "step MODE" runs one timed step and answers its
seconds; "report" prints a JSON object (torch version, threads, parameter count, the
peak of each mode) and exits. Unknown commands are answered on stderr with exit 2.

Peak: one extra step per mode under torch.profiler(profile_memory=True); the CPU
allocations and frees it records are replayed in time order, leaving out those that
end up as a parameter's .grad (remat budgets neither parameters nor their gradients),
and the most live bytes is the peak. Inputs are copied into the step (remat meters
them as input) and counted.
"""
import argparse
import json
import math
import os
import sys
import time


def parse_spec(spec):
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise SystemExit(f"[torch_models] expected key=value in spec {spec!r}, got {item!r}")
        options[key] = value
    return name, options


def build(spec, torch):
    """(blocks: list of modules, before(x) -> h, after(h) -> loss, make_inputs() -> x, extra modules)."""
    from torch import nn
    import torch.nn.functional as F

    name, o = parse_spec(spec)
    integer = lambda key, default: int(o.get(key, default))
    torch.manual_seed(0)

    def act_of(name):
        return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
                "gelu": nn.GELU(approximate="tanh")}[name]

    if name in ("mlp", "resmlp"):
        residual = name == "resmlp"
        layers, width, batch = integer("layers", 16 if residual else 8), integer("width", 256), integer("batch", 64)
        act = o.get("act", "relu")

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(width, width)
                self.act = act_of(act)
                gain = 2.0 if act == "relu" else 1.0
                std = math.sqrt(gain / width) * (0.5 / math.sqrt(layers) if residual else 1.0)
                with torch.no_grad():
                    self.linear.weight.normal_(0.0, std)
                    self.linear.bias.zero_()

            def forward(self, h):
                y = self.act(self.linear(h))
                return h + y if residual else y

        blocks = [Block() for _ in range(layers)]
        x = torch.rand(batch, width) * 2 - 1
        target = torch.rand(batch, width) * 2 - 1
        return blocks, [], lambda: x.clone(), lambda h: h, lambda h: F.mse_loss(h, target.clone())

    if name == "lstm":
        steps, hidden, inputs, batch = integer("steps", 32), integer("hidden", 32), integer("input", 16), integer("batch", 8)
        H = hidden
        cell = nn.Module()
        cell.w = nn.Parameter(torch.randn(4 * H, inputs + H) * math.sqrt(1.0 / (inputs + H)))
        bias = torch.zeros(4 * H)
        bias[H:2 * H] = 1.0
        cell.b = nn.Parameter(bias)
        readout = nn.Module()
        readout.w = nn.Parameter(torch.randn(inputs, H) * math.sqrt(1.0 / H))
        xs = [torch.rand(batch, inputs) * 2 - 1 for _ in range(steps)]
        target = torch.rand(batch, inputs) * 2 - 1
        step_inputs = [None] * steps  # this step's copies, set by make_inputs

        class Step(nn.Module):  # the state s = cat(h, c) in, the next state out; reads its own x_k
            def __init__(self, k):
                super().__init__()
                self.k = k

            def forward(self, s):
                h, c = s[:, :H], s[:, H:]
                gates = F.linear(torch.cat([step_inputs[self.k], h], 1), cell.w, cell.b)
                i, f = torch.sigmoid(gates[:, :H]), torch.sigmoid(gates[:, H:2 * H])
                g, og = torch.tanh(gates[:, 2 * H:3 * H]), torch.sigmoid(gates[:, 3 * H:])
                c2 = f * c + i * g
                return torch.cat([og * torch.tanh(c2), c2], 1)

        def make_inputs():
            for k in range(steps):
                step_inputs[k] = xs[k].clone()
            return torch.zeros(batch, 2 * H)

        after = lambda s: F.mse_loss(F.linear(s[:, :H], readout.w), target.clone())
        return [Step(k) for k in range(steps)], [cell, readout], make_inputs, lambda s: s, after

    if name == "transformer":
        layers, C, heads = integer("layers", 2), integer("width", 32), integer("heads", 4)
        T, B, V = integer("seq", 16), integer("batch", 4), integer("vocab", 64)
        p = integer("dropout", 10) / 100.0
        hd = C // heads
        mask = torch.triu(torch.full((T, T), -1e9), diagonal=1)

        def weighted(out, inp, gain=1.0, bias=True):
            lin = nn.Linear(inp, out, bias=bias)
            with torch.no_grad():
                lin.weight.normal_(0.0, math.sqrt(gain / inp))
                if bias:
                    lin.bias.zero_()
            return lin

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
                self.qkv = weighted(3 * C, C)
                self.proj = weighted(C, C, 1.0 / layers)
                self.fc = weighted(4 * C, C)
                self.fc2 = weighted(C, 4 * C, 1.0 / layers)
                self.drop1, self.drop2 = nn.Dropout(p), nn.Dropout(p)

            def forward(self, x):
                qkv = self.qkv(self.ln1(x))
                q, k, v = (qkv[:, :, j * C:(j + 1) * C].reshape(B, T, heads, hd).permute(0, 2, 1, 3) for j in range(3))
                scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + mask
                merged = (torch.softmax(scores, -1) @ v).permute(0, 2, 1, 3).reshape(B, T, C)
                x = x + self.drop1(self.proj(merged))
                return x + self.drop2(self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))

        embed = nn.Module()
        embed.tokens = nn.Parameter(torch.randn(V, C) * 0.1)
        embed.positions = nn.Parameter(torch.randn(T, C) * 0.1)
        head = nn.Module()
        head.ln = nn.LayerNorm(C)
        head.out = weighted(V, C, bias=False)
        ids = torch.randint(0, V, (B, T))
        labels = torch.roll(ids, -1, dims=1).reshape(B * T)  # next token; the last wraps to the first
        before = lambda i: F.embedding(i, embed.tokens) + embed.positions
        after = lambda x: F.cross_entropy(head.out(head.ln(x)).reshape(B * T, V), labels)
        return [Block() for _ in range(layers)], [embed, head], lambda: ids.clone(), before, after

    if name == "resnet":
        blocks, width, batch = integer("blocks", 3), integer("width", 8), integer("batch", 8)
        image, classes, bn = integer("image", 32), integer("classes", 10), integer("bn", 1) == 1

        def conv(out, inp, gain):
            c = nn.Conv2d(inp, out, 3, padding=1, bias=False)
            with torch.no_grad():
                c.weight.normal_(0.0, math.sqrt(gain / (inp * 9)))
            return c

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.n1 = nn.BatchNorm2d(width) if bn else nn.Identity()
                self.c1 = conv(width, width, 2.0)
                self.n2 = nn.BatchNorm2d(width) if bn else nn.Identity()
                self.c2 = conv(width, width, 1.0 / blocks)

            def forward(self, h):
                return h + self.c2(F.relu(self.n2(self.c1(F.relu(self.n1(h))))))

        stem = conv(width, 3, 2.0)
        fc = nn.Linear(width, classes)
        with torch.no_grad():
            fc.weight.normal_(0.0, math.sqrt(1.0 / width))
            fc.bias.zero_()
        x = torch.rand(batch, 3, image, image) * 2 - 1
        labels = torch.randint(0, classes, (batch,))
        after = lambda h: F.cross_entropy(fc(F.avg_pool2d(F.relu(h), image).reshape(batch, width)), labels)
        return [Block() for _ in range(blocks)], [stem, fc], lambda: x.clone(), stem, after

    if name == "unet":
        levels, width, batch, image = integer("levels", 2), integer("width", 8), integer("batch", 2), integer("image", 32)

        def conv(inp, out, bias=True, gain=2.0):
            c = nn.Conv2d(inp, out, 3, padding=1, bias=bias)
            with torch.no_grad():
                c.weight.normal_(0.0, math.sqrt(gain / (inp * 9)))
                if bias:
                    c.bias.zero_()
            return c

        down, up, channels = nn.ModuleList(), nn.ModuleList(), []
        first = conv(3, width)
        c = width
        for _ in range(levels):
            channels.append(c)
            down.append(conv(c, 2 * c))
            c *= 2
        for level in reversed(range(levels)):
            up.append(conv(c + channels[level], channels[level]))
            c = channels[level]
        head = conv(c, 3, bias=False, gain=1.0)
        x = torch.rand(batch, 3, image, image) * 2 - 1
        target = torch.rand(batch, 3, image, image) * 2 - 1

        def whole(x):
            h = F.relu(first(x))
            skips = []
            for d in down:
                skips.append(h)
                h = F.relu(d(F.max_pool2d(h, 2)))
            for u, skip in zip(up, reversed(skips)):
                h = F.relu(u(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skip], 1)))
            return F.mse_loss(head(h), target.clone())

        return [], [first, down, up, head], lambda: x.clone(), lambda v: v, whole
    if name == "torchvision":
        return build_real(o, torch)
    raise SystemExit(f"[torch_models] unknown model {name!r} (known: mlp, resmlp, lstm, transformer, resnet, unet, "
                     "torchvision)")


def build_real(o, torch):
    """The twin of an imported ONNX model: the very module scripts/export_models.py exported
    (same constructor, seed and dropout p=0; training mode, so batch norm runs on batch
    statistics as in the ONNX training export), cut into a stem, a chain of blocks for
    checkpoint_sequential and a head: the top-level layers in the order of the module's own
    forward()."""
    import importlib.util
    import pathlib

    from torch import nn
    import torch.nn.functional as F

    here = pathlib.Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("export_models", here.parent / "scripts" / "export_models.py")
    exporter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exporter)
    name = o.get("model", "")
    batch, image, classes = int(o.get("batch", 2)), int(o.get("image", 64)), int(o.get("classes", 1000))
    context = int(o.get("context", 16))
    model, _ = exporter.build_model(name, image, classes, context)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.train()
    flatten = nn.Flatten(1)
    if name.startswith("resnet"):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        blocks = [*model.layer1, *model.layer2, *model.layer3, *model.layer4, model.avgpool, flatten, model.fc]
    elif name == "mobilenet_v2":
        stem = model.features[0]
        blocks = [*model.features[1:], nn.AdaptiveAvgPool2d(1), flatten, model.classifier]
    elif name.startswith("densenet"):
        stem = model.features[:4]
        blocks = [*model.features[4:], nn.ReLU(), nn.AdaptiveAvgPool2d(1), flatten, model.classifier]
    elif name == "gpt2_tiny":
        positions = torch.arange(context)
        stem = lambda idx: model.wte(idx) + model.wpe(positions)
        blocks = list(model.blocks)
    elif name == "vit_tiny":
        def stem(x):
            h = model._process_input(x)
            h = torch.cat([model.class_token.expand(h.shape[0], -1, -1), h], dim=1)
            return model.encoder.dropout(h + model.encoder.pos_embedding)
        blocks = list(model.encoder.layers)
    else:
        raise SystemExit(f"[torch_models] no twin for torchvision:model={name!r} "
                         "(known: resnet18, resnet50, mobilenet_v2, densenet121, gpt2_tiny, vit_tiny)")
    generator = torch.Generator().manual_seed(1)
    if name == "gpt2_tiny":
        x = torch.randint(0, classes, (batch, context), generator=generator)
        labels = torch.randint(0, classes, (batch * context,), generator=generator)
        head = lambda h: F.linear(model.ln_f(h), model.wte.weight).reshape(batch * context, -1)
    else:
        x = torch.rand(batch, 3, image, image, generator=generator)
        labels = torch.randint(0, classes, (batch,), generator=generator)
        head = (lambda h: model.heads(model.encoder.ln(h)[:, 0])) if name == "vit_tiny" else (lambda h: h)
    after = lambda h: F.cross_entropy(head(h), labels)
    return blocks, [model], lambda: x.clone(), stem, after


class Twin:
    def __init__(self, spec, segments, torch):
        from torch import nn
        from torch.utils.checkpoint import checkpoint_sequential

        self.torch = torch
        blocks, extra, self.make_inputs, self.before, self.after = build(spec, torch)
        self.blocks = nn.Sequential(*blocks)
        self.modules = nn.ModuleList(list(blocks) + [m for m in extra if isinstance(m, nn.Module)])
        self.parameters = list(dict.fromkeys(self.modules.parameters()))
        self.modes = ["none", "ckpt"] if blocks else ["none"]
        self.segments = max(1, min(segments, len(blocks))) if blocks else 0
        self.checkpoint_sequential = checkpoint_sequential

    def parameter_count(self):
        return sum(p.numel() for p in self.parameters)

    def step(self, mode):
        x = self.make_inputs()
        h = self.before(x)
        if mode == "ckpt":
            if not h.requires_grad:  # checkpoint needs a graph input (a stem without one: the lstm state)
                h = h.detach().requires_grad_(True)
            h = self.checkpoint_sequential(self.blocks, self.segments, h)
        elif len(self.blocks):
            h = self.blocks(h)
        loss = self.after(h)
        loss.backward()
        return loss

    def zero(self):
        for p in self.parameters:
            p.grad = None

    def timed(self, mode):
        self.zero()
        t0 = time.perf_counter()
        self.step(mode)
        return time.perf_counter() - t0

    def peak(self, mode):
        from torch.profiler import ProfilerActivity, profile

        self.zero()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            self.step(mode)
        grads = {p.grad.data_ptr() for p in self.parameters if p.grad is not None}
        records = []
        pending = list(prof.profiler.kineto_results.experimental_event_tree())
        while pending:
            event = pending.pop()
            pending.extend(event.children)
            f = event.extra_fields
            if hasattr(f, "alloc_size") and str(getattr(f, "device", "cpu")).startswith("cpu"):
                records.append((event.start_time_ns, int(f.alloc_size), int(f.ptr), int(f.total_allocated)))
        records.sort(key=lambda r: (r[0], r[3] - r[1]))
        last_allocation = {}
        for index, (_, size, ptr, _) in enumerate(records):
            if size > 0:
                last_allocation[ptr] = index
        skipped = {last_allocation[p] for p in grads if p in last_allocation}
        live = peak = 0
        for index, (_, size, _, _) in enumerate(records):
            if index not in skipped:
                live += size
                peak = max(peak, live)
        return peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a remat zoo SPEC, e.g. mlp:layers=8,width=256,batch=64")
    parser.add_argument("--segments", type=int, default=0, help="checkpoint_sequential segments (0: round(sqrt(blocks)))")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    twin = Twin(args.model, args.segments, torch)
    if args.segments <= 0 and len(twin.blocks):
        twin.segments = max(1, round(math.sqrt(len(twin.blocks))))
    for _ in range(args.warmup):
        for mode in twin.modes:
            twin.timed(mode)
    print(json.dumps({"ready": True, "parameters": twin.parameter_count(), "modes": twin.modes,
                      "segments": twin.segments, "blocks": len(twin.blocks)}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["step"] and len(words) == 2 and words[1] in twin.modes:
            print(f"{twin.timed(words[1]):.9f}", flush=True)
        elif words == ["report"]:
            print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
                              "parameters": twin.parameter_count(),
                              "peaks": {mode: twin.peak(mode) for mode in twin.modes}}), flush=True)
            return 0
        elif words:
            print(f"[torch_models] unknown command {line.strip()!r} (step none|ckpt, report)", file=sys.stderr, flush=True)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
