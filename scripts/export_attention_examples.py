"""Export a small transformer encoder block and a tiny attention block with both torch exporters.

Needs torch, so it runs only in a separate torch venv (the project's venv stays torch-free):

    python3 -m venv /tmp/tv
    /tmp/tv/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime numpy
    /tmp/tv/bin/python scripts/export_attention_examples.py [--out models/examples]

Writes, into the folder:

    attention_encoder_legacy.onnx  TorchScript exporter, opset 13: LayerNorm decomposed into
                                   ReduceMean/Sub/Pow/Sqrt/Div, GELU as Erf, causal mask as Where
    attention_encoder_dynamo.onnx  dynamo exporter, opset 20: LayerNormalization, Gelu, Where
    attention_tiny_legacy.onnx     TorchScript exporter, opset 13: one head, d_model 8, sequence 4
    attention_tiny_dynamo.onnx     dynamo exporter, opset 18, the same block

each with a dynamic batch dimension, weights embedded, ir_version <= 10, and beside it an
``*.io.npz`` holding a fixed batch of 3 inputs ``x`` and torch's output ``y``. The script
checks that onnxruntime reproduces torch's output within 1e-5 before it writes anything.
(torch.nn.TransformerEncoderLayer itself does not trace with the TorchScript exporter in
torch 2.13, so the encoder block is written out with the same math.)
"""

from __future__ import annotations

import argparse
import io
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
LEGACY_OPSET = 13
MAX_IR_VERSION = 10  # onnxruntime 1.32 refuses newer
TOLERANCE = 1e-5


class EncoderBlock(nn.Module):
    """Post-norm transformer encoder layer: causal multi-head self-attention, then a GELU MLP.

    y = LN2(h + W2·gelu(W1·h)), h = LN1(x + Wo·softmax(QKᵀ/√d_head + mask)·V).
    """

    def __init__(self, d_model: int = 16, heads: int = 2, d_ff: int = 32, seq: int = 6) -> None:
        super().__init__()
        self.heads, self.d_head = heads, d_model // heads
        self.q, self.k, self.v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model)
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff1, self.ff2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, d_model) -> (N, T, d_model)."""
        n, t, d = x.shape
        q, k, v = (p(x).reshape(n, t, self.heads, self.d_head).transpose(1, 2)
                   for p in (self.q, self.k, self.v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)
        scores = scores.masked_fill(self.mask[:t, :t], float("-inf"))
        attn = torch.softmax(scores, dim=-1) @ v
        h = self.ln1(x + self.out(attn.transpose(1, 2).reshape(n, t, d)))
        return self.ln2(h + self.ff2(F.gelu(self.ff1(h))))


class TinyAttention(nn.Module):
    """One attention head with a residual: y = x + Wo·softmax(QKᵀ/√d)·V, d_model 8, sequence 4.

    Every op here has an analog primitive on the opamp target, so it gets a whole netlist.
    """

    def __init__(self, d_model: int = 8) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(d_model)
        self.q, self.k, self.v, self.out = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 4, 8) -> (N, 4, 8)."""
        scores = (self.q(x) @ self.k(x).transpose(1, 2)) * self.scale
        return x + self.out(torch.softmax(scores, dim=-1) @ self.v(x))


def export_legacy(model: nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    """TorchScript exporter (dynamo=False) with a dynamic batch axis named N."""
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=LEGACY_OPSET,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return onnx.load_from_string(buf.getvalue())


def export_dynamo(model: nn.Module, x: torch.Tensor, opset: int) -> onnx.ModelProto:
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

    Weights use torch's default init under ``torch.manual_seed`` (LayerNorm affine
    parameters randomized from ``gen`` so they are not the identity); inputs come from ``gen``.
    """
    encoder, tiny = EncoderBlock().eval(), TinyAttention().eval()
    with torch.no_grad():
        for ln in (encoder.ln1, encoder.ln2):
            ln.weight.copy_(torch.rand(ln.weight.shape, generator=gen) + 0.5)
            ln.bias.copy_(torch.randn(ln.bias.shape, generator=gen) * 0.2)
    x_enc = torch.randn(3, 6, 16, generator=gen)
    x_tiny = torch.rand(3, 4, 8, generator=gen) * 2 - 1
    jobs = {
        "attention_encoder_legacy": (lambda: export_legacy(encoder, x_enc), encoder, x_enc),
        "attention_encoder_dynamo": (lambda: export_dynamo(encoder, x_enc, 20), encoder, x_enc),
        "attention_tiny_legacy": (lambda: export_legacy(tiny, x_tiny), tiny, x_tiny),
        "attention_tiny_dynamo": (lambda: export_dynamo(tiny, x_tiny, 18), tiny, x_tiny),
    }
    out = {}
    for stem, (export, module, x) in jobs.items():
        with torch.no_grad():
            y = module(x).numpy()
        xn = x.numpy()
        out[stem] = (finish(export(), xn, y, stem), xn, y)
    return out


def main(argv: list[str] | None = None) -> int:
    """Export every example into ``--out`` and print each file's op types."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "examples")
    args = parser.parse_args(argv)
    torch.manual_seed(SEED)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    examples = build_all(torch.Generator().manual_seed(SEED))
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
