"""NumPy semantics of the ONNX ops Kelvin understands, one registry keyed by op and schema version.

Importing this package registers every kernel:
    linear      Gemm, MatMul, Conv
    pooling     MaxPool, AveragePool, GlobalAveragePool
    reduce      ReduceSum, ReduceMean
    elementwise Relu, LeakyRelu, Sigmoid, Tanh, Exp, Log, Clip, Softmax, LogSoftmax, Sqrt, Pow, Erf,
                Gelu, Add, Sub, Mul, Div, Sum, BatchNormalization
    activations Abs, Neg, Elu, Celu, Selu, Softplus, Softsign, HardSigmoid, HardSwish, PRelu
    normalization LayerNormalization
    shape       Flatten, Reshape, Transpose, Concat, Split, Identity, Dropout, Unsqueeze, Squeeze
    folding     Shape, Gather, Slice, Cast, Constant, ConstantOfShape, Expand, Range, Equal, Where
    kelvin_ops  kelvin.Dense, kelvin.Im2Col, kelvin.ColToImage, kelvin.WindowMax, kelvin.WindowSum
"""

from __future__ import annotations

from . import (  # noqa: F401  (registers kernels)
    activations, elementwise, folding, kelvin_ops, linear, normalization, pooling, reduce, shape,
)
from .registry import OPS, OpSpec, lookup, register
from .shape import implied_attributes

__all__ = ["OPS", "OpSpec", "implied_attributes", "lookup", "register"]
