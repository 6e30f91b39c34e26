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

import math

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from export_torch_examples import export_dynamo, export_legacy, main, run_jobs  # the shared export toolkit
from torch import nn


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
        "attention_encoder_dynamo": (lambda: export_dynamo(encoder, x_enc, opset=20), encoder, x_enc),
        "attention_tiny_legacy": (lambda: export_legacy(tiny, x_tiny), tiny, x_tiny),
        "attention_tiny_dynamo": (lambda: export_dynamo(tiny, x_tiny, opset=18), tiny, x_tiny),
    }
    return run_jobs(jobs)


if __name__ == "__main__":
    raise SystemExit(main(build=build_all, doc=__doc__))
