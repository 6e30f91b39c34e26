"""Evaluate a graph in NumPy with each op's own kernel, for the compiler's probes (shapes, batch independence).

The engine (`sim.engine`) is the fast path; passes cannot import it, and only need to know what
every tensor comes out as on a small batch. A node that cannot run stops the probe: None.
"""

from __future__ import annotations

import logging

import numpy as np

from circuits.errors import KelvinError
from compiler.ir import Graph, PrimitiveNode
from compiler.ops import lookup

log = logging.getLogger(__name__)


def evaluate_graph(g: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Every tensor's value (constants, ``feeds`` and each node's outputs), or None when a node fails."""
    env: dict[str, np.ndarray] = {**g.constants, **feeds}
    for node in g.topo():
        args = [env[t] if t else None for t in node.inputs]
        try:
            with np.errstate(all="ignore"):
                if isinstance(node, PrimitiveNode):
                    outs = [np.asarray(node.primitive.ideal(*args))]  # type: ignore[union-attr]
                else:
                    spec = lookup(node.op, node.version, node.name)  # type: ignore[attr-defined]
                    outs = [np.asarray(v) for v in spec.kernel(args, node.attrs, node.version)]  # type: ignore[attr-defined]
        except (KelvinError, ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
            log.debug("graph probe stopped at %s: %s", node.name, exc)
            return None
        env.update((t, v) for t, v in zip(node.outputs, outs) if t)
    return env
