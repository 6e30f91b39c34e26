"""ResNet-18 training throughput at 32×32, batch 16: Kelvin's engine in `pcm` mode (crossbar target) and
`ideal`, against PyTorch (CPU, the same architecture) in the same run.

One training step = forward, backward and an SGD-with-momentum update on one batch of 16 random
32×32×3 images with random labels (throughput does not depend on the data). Median seconds per
step over ``--steps`` after one warm-up step, one thread each (PyTorch's fastest setting at small
batches on 2 cores). Prints JSON; never fails on a time. PyTorch is optional.

    python benchmarks/bench_resnet_train.py [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BATCH, SIZE, CLASSES = 16, 32, 10


def kelvin_step_seconds(modes: tuple[str, ...], steps: int) -> float:
    from compiler.pipeline import compile_model
    from sim.engine.prepare import HardwareOptions, build_program
    from sim.train.loss import loss_and_grad
    from sim.train.optim import make_optimizer
    from sim.zoo import resnet18

    target = "crossbar" if "pcm" in modes else "opamp"
    c = compile_model(resnet18(num_classes=CLASSES, image_size=SIZE), target)
    prog = build_program(c, HardwareOptions(modes=modes), trainable=True)
    opt = make_optimizer("sgd", lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    name, out = c.graph.inputs[0], c.graph.outputs[0]
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        z, tape = prog.forward({name: x}, rng=rng, train=True)
        _, g = loss_and_grad("ce", z[out], y)
        opt.step(prog.params, prog.backward(tape, {out: g}))
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_step_seconds(steps: int) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(1)

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
            self.c2, self.b2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
            self.down = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

        def forward(self, x):
            return torch.relu(self.down(x) + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))

    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    c_in = 64
    for stage, c_out in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            layers.append(Block(c_in, c_out, 2 if stage > 1 and block == 0 else 1))
            c_in = c_out
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, CLASSES))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    y = torch.randint(0, CLASSES, (BATCH,))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    out: dict = {"model": f"ResNet-18, {SIZE}x{SIZE}x3, {CLASSES} classes", "batch": BATCH, "threads": 1}
    sec = {"pcm": kelvin_step_seconds(("pcm",), args.steps), "ideal": kelvin_step_seconds(("ideal",), args.steps)}
    out["kelvin_s_per_step"] = sec
    out["kelvin_samples_per_s"] = {k: BATCH / v for k, v in sec.items()}
    try:
        t = torch_step_seconds(args.steps)
    except ImportError:
        t = None
    if t is not None:
        out["torch_s_per_step"] = t
        out["torch_samples_per_s"] = BATCH / t
        out["kelvin_vs_torch_time"] = {k: v / t for k, v in sec.items()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
