"""Execution engines for Kelvin graphs (ideal devices now; fitted behavioral models later)."""

from sim.engine.ideal import execute

__all__ = ["execute"]
