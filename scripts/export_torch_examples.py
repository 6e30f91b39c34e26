"""Export small torch models to ONNX with both exporters, for Kelvin's importer tests.

Needs torch, so it runs only in a separate torch venv (the project's venv stays torch-free):

    python3 -m venv /tmp/tv
    /tmp/tv/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime numpy
    /tmp/tv/bin/python scripts/export_torch_examples.py [--out models/examples]

(use the CPU wheel file directly if pip reaches for a CUDA build). Writes, into the folder:

    torch_cnn_legacy.onnx         TorchScript exporter, opset 13, constant folding (BN fused)
    torch_cnn_legacy_nofold.onnx  TorchScript exporter, opset 13, no folding, x.view(N, -1)
    torch_cnn_dynamo.onnx         dynamo exporter, opset 18, x.view(N, -1)
    torch_mlp_legacy.onnx         TorchScript exporter, opset 13
    torch_mlp_dynamo.onnx         dynamo exporter, opset 18

each with a dynamic batch dimension, weights embedded, ir_version <= 10, and beside it an
``*.io.npz`` holding a fixed batch of 3 inputs ``x`` and torch's output ``y``. The script
checks that onnxruntime reproduces torch's output within 1e-5 before it writes anything.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
LEGACY_OPSET = 13
DYNAMO_OPSET = 18
MAX_IR_VERSION = 10  # onnxruntime 1.31 refuses newer
TOLERANCE = 1e-5


class SmallCNN(nn.Module):
    """Conv+BN+ReLU, MaxPool, Conv+BN+ReLU, global pooling, flatten, Dropout, Linear head."""

    def __init__(self, flatten: str = "flatten") -> None:
        super().__init__()
        self.flatten = flatten
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(
            nn.Dropout(0.2), nn.Linear(16, 32), nn.LeakyReLU(0.1),
            nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 5), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features, then flatten the way this variant was built with, then the head."""
        h = self.features(x)
        h = torch.flatten(h, 1) if self.flatten == "flatten" else h.view(h.size(0), -1)
        return self.head(h)


class TinyMLP(nn.Module):
    """Linear-ReLU-Linear-Softmax classifier on 8 features."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 4), nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of feature rows."""
        return self.net(x)


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)


def export_legacy(model: nn.Module, x: torch.Tensor, fold: bool = True,
                  opset: int = LEGACY_OPSET) -> onnx.ModelProto:
    """TorchScript exporter (dynamo=False) with a dynamic batch axis named N."""
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset,
                      input_names=["x"], output_names=["y"], do_constant_folding=fold,
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return onnx.load_from_string(buf.getvalue())


def export_dynamo(model: nn.Module, x: torch.Tensor, opset: int = DYNAMO_OPSET) -> onnx.ModelProto:
    """torch.export-based exporter (dynamo=True), weights embedded, dynamic batch N."""
    batch = torch.export.Dim("N", min=1, max=1024)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset,
                          input_names=["x"], output_names=["y"], external_data=False,
                          dynamic_shapes={"x": {0: batch}})
        model_proto = onnx.load(str(path))
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model_proto.graph.initializer):
        raise RuntimeError("dynamo export left external data; weights must be embedded")
    return model_proto


def finish(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray, name: str) -> onnx.ModelProto:
    """Cap ir_version, check the model and that onnxruntime reproduces torch's output."""
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    err = float(np.max(np.abs(got - y)))
    if err > TOLERANCE:
        raise RuntimeError(f"{name}: onnxruntime differs from torch by {err:g} > {TOLERANCE}")
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if not isinstance(dims[0], str):
        raise RuntimeError(f"{name}: batch dimension is not symbolic: {dims}")
    return model


def build_all(gen: torch.Generator) -> dict[str, tuple[onnx.ModelProto, np.ndarray, np.ndarray]]:
    """Make every example: file stem -> (model, input batch, torch output).

    Weights use torch's default init under ``torch.manual_seed``; BN statistics and the
    inputs come from ``gen``.
    """
    cnn_flat, cnn_view, mlp = SmallCNN("flatten"), SmallCNN("view"), TinyMLP()
    for m in (cnn_flat, cnn_view, mlp):
        randomize_bn(m, gen)
        m.eval()
    cnn_view.load_state_dict(cnn_flat.state_dict())
    x_cnn = torch.randn(3, 3, 16, 16, generator=gen)
    x_mlp = torch.randn(3, 8, generator=gen)
    jobs: dict[str, tuple[Callable[[], onnx.ModelProto], nn.Module, torch.Tensor]] = {
        "torch_cnn_legacy": (lambda: export_legacy(cnn_flat, x_cnn, True), cnn_flat, x_cnn),
        "torch_cnn_legacy_nofold": (lambda: export_legacy(cnn_view, x_cnn, False), cnn_view, x_cnn),
        "torch_cnn_dynamo": (lambda: export_dynamo(cnn_view, x_cnn), cnn_view, x_cnn),
        "torch_mlp_legacy": (lambda: export_legacy(mlp, x_mlp, True), mlp, x_mlp),
        "torch_mlp_dynamo": (lambda: export_dynamo(mlp, x_mlp), mlp, x_mlp),
    }
    return run_jobs(jobs)


Job = tuple[Callable[[], onnx.ModelProto], nn.Module, torch.Tensor]


def run_jobs(jobs: dict[str, Job]) -> dict[str, tuple[onnx.ModelProto, np.ndarray, np.ndarray]]:
    """Export each job and check it (`finish`): file stem -> (model, input batch, torch output)."""
    out = {}
    for stem, (export, module, x) in jobs.items():
        with torch.no_grad():
            y = module(x).numpy()
        xn = x.numpy()
        out[stem] = (finish(export(), xn, y, stem), xn, y)
    return out


def main(argv: list[str] | None = None, build=None, doc: str | None = None) -> int:
    """Export every example of ``build`` (default: this script's) into ``--out``; print each file's ops."""
    parser = argparse.ArgumentParser(description=(doc or __doc__).splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "examples")
    args = parser.parse_args(argv)
    torch.manual_seed(SEED)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    examples = (build or build_all)(torch.Generator().manual_seed(SEED))
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, (model, x, y) in examples.items():
        onnx.save(model, str(args.out / f"{stem}.onnx"))
        np.savez(args.out / f"{stem}.io.npz", x=x, y=y)
        ops = sorted({n.op_type for n in model.graph.node})
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        print(f"{stem}: opset {opset}, ir {model.ir_version}, ops {', '.join(ops)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
