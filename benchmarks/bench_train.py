"""Training throughput and accuracy against PyTorch (CPU), measured in one run.

- Throughput: 64-100-10 ReLU MLP, batch 32, SGD with momentum 0.9, digits, one epoch per repeat
  (median of --repeats); Kelvin in `ideal` (opamp), `quantized` (current), `population` (current)
  and `pcm` (crossbar); PyTorch with one thread (its fastest setting at this size) and, for the
  record, two. A small CNN (the bundled torch CNN's shape) likewise.
- Accuracy: 64-32-10 MLP, the same initial weights, optimizer, learning rate, batch and epochs in
  Kelvin (`ideal`) and PyTorch, test accuracy on the digits split.
- Pipelined vs standard updates: accuracy and time, mean ± std over 3 seeds.
Prints JSON; never fails on a time. PyTorch is optional: without it only Kelvin's figures print.

    python benchmarks/bench_train.py [--repeats 5] [--epochs 20]
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
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from compiler.pipeline import compile_model  # noqa: E402
from sim.engine.prepare import HardwareOptions, build_program  # noqa: E402
from sim.train.data import load_dataset  # noqa: E402
from sim.train.loop import TrainConfig, evaluate, train  # noqa: E402
from sim.zoo import cnn, mlp  # noqa: E402


def kelvin_epoch_rate(model, target, modes, data, repeats, batch=32, lr=0.01):
    c = compile_model(model, target)
    rates = []
    chip = "chip" in modes  # one chip instance (seed 0, compact mirrors), trained through its chip map
    opts = HardwareOptions(modes=modes, chip_seed=0 if chip else None, sizing="compact" if chip else "default")
    for r in range(repeats):
        prog = build_program(c, opts, trainable=True)
        res = train(prog, data, TrainConfig(epochs=1, batch_size=batch, lr=lr, seed=r), progress=False)
        rates.append(res.samples_per_s)
    return statistics.median(rates)


def torch_net(model: onnx.ModelProto):
    """A torch Sequential with the ONNX MLP's (Gemm, Relu) layers and its initial weights."""
    import torch
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = []
    for n in model.graph.node:
        if n.op_type == "Gemm":
            w, b = inits[n.input[1]], inits[n.input[2]]
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.copy()))
                lin.bias.copy_(torch.from_numpy(b.copy()))
            layers.append(lin)
        elif n.op_type == "Relu":
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_cnn():
    import torch
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(16, 10))


def torch_train(net, x, y, x_test, y_test, epochs, batch, lr, seed, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.default_rng([seed, 1])
    t = 0.0
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        t0 = time.perf_counter()
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        t += time.perf_counter() - t0
    with torch.no_grad():
        acc = float((net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    return len(x) * epochs / t, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    data = load_dataset("digits", (None, 64))
    m100 = mlp((64, 100, 10), seed=0)
    out: dict = {"torch": have_torch, "repeats": args.repeats}
    rates = {"ideal": kelvin_epoch_rate(m100, "opamp", ("ideal",), data, args.repeats),
             "quantized": kelvin_epoch_rate(m100, "current", ("quantized",), data, args.repeats),
             "population": kelvin_epoch_rate(m100, "current", ("population",), data, args.repeats),
             "pcm": kelvin_epoch_rate(m100, "crossbar", ("pcm",), data, args.repeats),
             "chip": kelvin_epoch_rate(m100, "current", ("chip",), data, args.repeats)}
    row: dict = {"kelvin_samples_per_s": rates}
    if have_torch:
        t1 = statistics.median(torch_train(torch_net(m100), data.x_train, data.y_train, data.x_test, data.y_test,
                                           1, 32, 0.01, r, 1)[0] for r in range(args.repeats))
        t2 = statistics.median(torch_train(torch_net(m100), data.x_train, data.y_train, data.x_test, data.y_test,
                                           1, 32, 0.01, r, 2)[0] for r in range(args.repeats))
        row.update(torch_1thread_samples_per_s=t1, torch_2threads_samples_per_s=t2,
                   ratio_vs_torch_best={k: v / max(t1, t2) for k, v in rates.items()},
                   targets={"ideal": 1.0, "quantized": 0.5, "chip": 0.5, "pcm": 0.5})
    out["mlp_64_100_10_batch32_sgd"] = row
    img = load_dataset("digits", (None, 1, 8, 8))
    cmodel = cnn(seed=0)
    crow = {"kelvin_samples_per_s": kelvin_epoch_rate(cmodel, "opamp", ("ideal",), img, max(1, args.repeats // 2))}
    if have_torch:
        crow["torch_1thread_samples_per_s"] = statistics.median(
            torch_train(torch_cnn(), img.x_train, img.y_train, img.x_test, img.y_test, 1, 32, 0.01, r, 1)[0]
            for r in range(max(1, args.repeats // 2)))
        crow["note"] = "torch CNN of a similar shape (conv-relu-pool-conv-relu-gap-linear), not the same graph"
    out["small_cnn_batch32"] = crow
    m32 = mlp((64, 32, 10), seed=0)
    c = compile_model(m32, "opamp")
    prog = build_program(c)
    res = train(prog, data, TrainConfig(epochs=args.epochs, batch_size=32, lr=0.05, seed=0), progress=False)
    _, acc_k, _ = evaluate(prog, data.x_test, data.y_test, "ce")
    acc_row: dict = {"epochs": args.epochs, "lr": 0.05, "batch": 32, "optimizer": "sgd momentum 0.9",
                     "kelvin_test_accuracy": acc_k, "kelvin_seconds": res.train_seconds}
    if have_torch:
        _, acc_t = torch_train(torch_net(m32), data.x_train, data.y_train, data.x_test, data.y_test, args.epochs, 32,
                               0.05, 0, 1)
        acc_row.update(torch_test_accuracy=acc_t, difference_points=100 * (acc_k - acc_t))
    out["accuracy_64_32_10"] = acc_row
    pipe: dict = {}
    for pipelined in (False, True):
        accs, secs = [], []
        for seed in range(3):  # seed: the initial weights and the data order
            prog = build_program(compile_model(mlp((64, 32, 10), seed=seed), "opamp"))
            r = train(prog, data, TrainConfig(epochs=args.epochs, lr=0.05, seed=seed, pipelined=pipelined),
                      progress=False)
            accs.append(evaluate(prog, data.x_test, data.y_test, "ce")[1])
            secs.append(r.train_seconds)
        pipe["pipelined" if pipelined else "standard"] = {
            "accuracy_mean": statistics.mean(accs), "accuracy_std": statistics.stdev(accs),
            "seconds_mean": statistics.mean(secs), "seconds_std": statistics.stdev(secs)}
    out["pipelined_vs_standard_64_32_10"] = pipe
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
