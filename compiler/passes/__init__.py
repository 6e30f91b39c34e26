"""Graph passes: each is ``run(graph) -> changed``; pipelines are plain lists (compiler.pipeline)."""

from compiler.passes.base import Pass
from compiler.passes.cleanup import EliminateDead, EliminateIdentity
from compiler.passes.constant_fold import ConstantFold
from compiler.passes.linear import FoldBatchNorm, FuseBiasAdd, GemmToDense
from compiler.passes.lower import MapToPrimitives
from compiler.passes.shapes import InferShapes
from compiler.passes.windows import ConvToMatrix, PoolToWindows

__all__ = [
    "ConstantFold", "ConvToMatrix", "EliminateDead", "EliminateIdentity", "FoldBatchNorm",
    "FuseBiasAdd", "GemmToDense", "InferShapes", "MapToPrimitives", "Pass", "PoolToWindows",
]
