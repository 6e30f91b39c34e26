"""The behavioral engine: kernels with gradients, hardware models, compiled programs.

- `kernels`: one kernel per primitive kind (forward and backward, from `circuits.ideal`);
- `ops`: gradients of the ONNX-level ops the engine executes, and the shared routing backward;
- `maps` and `sim.hardware`: hardware models as maps on weights, inputs and outputs;
- `program.Program`: a graph compiled once into a differentiable program with named parameters;
- `ideal.execute`: one-shot ideal evaluation (exact ONNX semantics).
"""

from sim.engine.ideal import execute
from sim.engine.program import Program

__all__ = ["Program", "execute"]
