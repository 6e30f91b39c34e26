"""Reference ONNX networks built with ``onnx.helper``: seeded, torch-free test inputs for Kelvin.

| builder          | input          | what it exercises                                          |
|------------------|----------------|------------------------------------------------------------|
| ``gemm_example`` | v [N, 2]       | one Gemm node: the analog-computer example                 |
| ``mlp``          | x [N, 64]      | Gemm (transB=1) + activation layers                        |
| ``cnn``          | x [N, 1, 8, 8] | Conv+BN+Relu, MaxPool, grouped strided Conv, pool, Softmax |
| ``resnet18``     | x [N, 3, S, S] | the ResNet-18 shape (11,689,512 trainable parameters)      |
| ``resnet_small`` | x [N, 1, 8, 8] | 3-stage ResNet without BatchNorm (8/16/32 channels), trainable |
| ``digits_mlp``   | x [N, 64]      | a 64-16-10 MLP trained on scikit-learn's digits            |

Every model has ir_version 10 (what onnxruntime 1.31 accepts), a symbolic batch dimension
named "N" on its input and output, and passes ``onnx.checker`` with full shape inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from circuits.errors import ParameterError
from sim.zoo_builder import DEFAULT_OPSET, IR_VERSION, MIN_OPSET, GraphBuilder, _check_opset  # noqa: F401  (re-exported)

ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Softplus")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "models" / "examples"
DIGITS_MLP_PATH = EXAMPLES_DIR / "digits_mlp.onnx"
DIGITS_TEST_PATH = EXAMPLES_DIR / "digits_test.npz"

# ONNX input slots of BatchNormalization that hold running statistics, not trained parameters.
_BN_STAT_SLOTS = (3, 4)


def gemm_example(opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The analog-computer example: one Gemm node computing y = -0.35·v1 + 5.24·v2 + 2.6."""
    g = GraphBuilder("gemm_example")
    w = g.param("w", np.array([[-0.35, 5.24]]))
    c = g.param("c", np.array([2.6]))
    g.node("Gemm", ["v", w, c], "y", transB=1)
    return g.build(("v", ["N", 2]), ("y", ["N", 1]), opset,
                   doc="y = -0.35*v1 + 5.24*v2 + 2.6 (analog-computer example)")


def mlp(sizes: Sequence[int] = (64, 32, 10), seed: int = 0, activation: str = "Relu",
        opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Fully connected net: Gemm (transB=1) + ``activation`` per layer, the last layer linear."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ParameterError(f"mlp: sizes {tuple(sizes)} needs >= 2 positive layer widths")
    if activation not in ACTIVATIONS:
        raise ParameterError(
            f"mlp: activation {activation!r} is unsupported; use one of {ACTIVATIONS}")
    g = GraphBuilder("mlp", np.random.default_rng(seed))
    gain = 2.0 if activation == "Relu" else 1.0
    h, n_layers = "x", len(sizes) - 1
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == n_layers - 1
        h = g.gemm(h, f"fc{i}", n_in, n_out, gain=1.0 if last else gain, out="y" if last else None)
        if not last:
            h = g.node(activation, [h], f"act{i}")
    return g.build(("x", ["N", sizes[0]]), ("y", ["N", sizes[-1]]), opset,
                   doc=f"MLP {'-'.join(map(str, sizes))} with {activation}, seed {seed}")


def cnn(seed: int = 0, global_pool: bool = True, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Small CNN on 1×8×8: Conv+BN+Relu, MaxPool, grouped stride-2 Conv, pool, Gemm, Softmax."""
    g = GraphBuilder("cnn", np.random.default_rng(seed))
    h = g.conv("x", "conv1", 1, 4, 3, pad=1, bias=True)           # [N, 4, 8, 8]
    h = g.node("Relu", [g.batchnorm(h, "bn1", 4)], "relu1")
    h = g.node("MaxPool", [h], "pool1", kernel_shape=[2, 2], strides=[2, 2])  # [N, 4, 4, 4]
    h = g.conv(h, "conv2", 4, 8, 3, stride=2, pad=1, groups=2, bias=True)  # [N, 8, 2, 2]
    h = g.node("Relu", [h], "relu2")
    if global_pool:
        h = g.node("GlobalAveragePool", [h], "pool2")
    else:
        h = g.node("AveragePool", [h], "pool2", kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Flatten", [h], "flatten", axis=1)                   # [N, 8]
    h = g.gemm(h, "fc", 8, 10)
    g.node("Softmax", [h], "y", axis=1)
    return g.build(("x", ["N", 1, 8, 8]), ("y", ["N", 10]), opset,
                   doc=f"small CNN on 1x8x8, seed {seed}")


def _basic_block(g: GraphBuilder, x: str, name: str, c_in: int, c_out: int, stride: int) -> str:
    """ResNet BasicBlock: two 3×3 conv+BN, a 1×1/stride conv+BN shortcut when shapes change."""
    h = g.conv(x, f"{name}.conv1", c_in, c_out, 3, stride=stride, pad=1)
    h = g.node("Relu", [g.batchnorm(h, f"{name}.bn1", c_out)], f"{name}.relu1")
    h = g.conv(h, f"{name}.conv2", c_out, c_out, 3, pad=1)
    # A small residual-branch scale keeps the activation scale O(1) over eight blocks.
    h = g.batchnorm(h, f"{name}.bn2", c_out, scale=(0.2, 0.5))
    if stride != 1 or c_in != c_out:
        x = g.conv(x, f"{name}.downsample.0", c_in, c_out, 1, stride=stride)
        x = g.batchnorm(x, f"{name}.downsample.1", c_out)
    return g.node("Relu", [g.node("Add", [x, h], f"{name}.add")], f"{name}.relu2")


def resnet18(seed: int = 0, num_classes: int = 1000, image_size: int = 224,
             opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """ResNet-18 (torchvision layout and parameter names) with He init and random BN statistics."""
    if image_size < 32 or num_classes < 1:
        raise ParameterError(f"resnet18: image_size {image_size} must be >= 32, "
                             f"num_classes {num_classes} >= 1")
    g = GraphBuilder("resnet18", np.random.default_rng(seed))
    h = g.conv("x", "conv1", 3, 64, 7, stride=2, pad=3)
    h = g.node("Relu", [g.batchnorm(h, "bn1", 64)], "relu")
    h = g.node("MaxPool", [h], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    c_in = 64
    for stage, c_out in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            h = _basic_block(g, h, f"layer{stage}.{block}", c_in, c_out, stride)
            c_in = c_out
    h = g.node("Flatten", [g.node("GlobalAveragePool", [h], "avgpool")], "flatten", axis=1)
    g.gemm(h, "fc", 512, num_classes, out="y")
    return g.build(("x", ["N", 3, image_size, image_size]), ("y", ["N", num_classes]), opset,
                   doc=f"ResNet-18, {num_classes} classes, {image_size}px, seed {seed}")


def _plain_block(g: GraphBuilder, x: str, name: str, c_in: int, c_out: int, stride: int) -> str:
    """BasicBlock without BatchNorm: conv+bias, Relu, conv+bias (He init scaled by 1/4 so the block
    starts near the identity), a 1×1/stride conv shortcut when shapes change, Add, Relu."""
    h = g.node("Relu", [g.conv(x, f"{name}.conv1", c_in, c_out, 3, stride=stride, pad=1, bias=True)],
               f"{name}.relu1")
    h = g.conv(h, f"{name}.conv2", c_out, c_out, 3, pad=1, bias=True, gain=2.0 / 16)
    if stride != 1 or c_in != c_out:
        x = g.conv(x, f"{name}.shortcut", c_in, c_out, 1, stride=stride, bias=True, gain=1.0)
    return g.node("Relu", [g.node("Add", [x, h], f"{name}.add")], f"{name}.relu2")


def resnet_small(seed: int = 0, channels: Sequence[int] = (8, 16, 32), num_classes: int = 10,
                 image_size: int = 8, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """A 3-stage ResNet for 1×S×S images: 3×3 stem conv, one basic block per stage (stride 2
    between stages), global average pool, Gemm. No BatchNorm: Kelvin imports only inference
    BatchNorm, which folds into the conv before it, so a trainable net has conv biases instead."""
    if len(channels) < 1 or any(int(c) < 1 for c in channels) or image_size < 2 ** (len(channels) - 1):
        raise ParameterError(f"resnet_small: channels {tuple(channels)} need positive widths and image_size "
                             f"{image_size} ≥ 2^(stages - 1)")
    g = GraphBuilder("resnet_small", np.random.default_rng(seed))
    h = g.node("Relu", [g.conv("x", "stem", 1, channels[0], 3, pad=1, bias=True)], "stem.relu")
    c_in = channels[0]
    for stage, c_out in enumerate(channels, start=1):
        h = _plain_block(g, h, f"layer{stage}", c_in, c_out, 1 if stage == 1 else 2)
        c_in = c_out
    h = g.node("Flatten", [g.node("GlobalAveragePool", [h], "avgpool")], "flatten", axis=1)
    g.gemm(h, "fc", c_in, num_classes, out="y")
    return g.build(("x", ["N", 1, image_size, image_size]), ("y", ["N", num_classes]), opset,
                   doc=f"3-stage ResNet {'/'.join(map(str, channels))}, no BatchNorm, seed {seed}")


def digits_mlp(seed: int = 0) -> onnx.ModelProto:
    """The 64-16-10 digits MLP: the bundled file for seed 0 when present, else trained now."""
    if seed == 0 and DIGITS_MLP_PATH.is_file():
        return onnx.load(str(DIGITS_MLP_PATH))
    from sim.zoo_train import train_digits_mlp  # sklearn is only needed when training

    return train_digits_mlp(seed)[0]


def param_count(model: onnx.ModelProto, include_bn_stats: bool = False) -> int:
    """Number of float parameters in the initializers, like torch's ``numel`` over parameters.

    BatchNormalization running mean/variance are buffers, not parameters, so they are left
    out unless ``include_bn_stats``; integer initializers (shapes, axes) never count.
    """
    stats = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization"
             for i in _BN_STAT_SLOTS if i < len(n.input)}
    total = 0
    for t in model.graph.initializer:
        if t.data_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
                               TensorProto.BFLOAT16):
            continue
        if t.name in stats and not include_bn_stats:
            continue
        total += int(np.prod(t.dims, dtype=np.int64))
    return total
