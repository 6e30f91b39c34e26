"""Wire resistance in a crossbar tile (IR drop): the tile's exact DC solution, and its effective weights.

Layout (the one `circuits.spice.crossbar_mesh` writes, so engine and netlist state the same circuit):

- R rows, P physical columns (a weight column is a G+ and a G− column side by side, G+ first).
- Row i is driven by its DAC at the left edge; a wire segment of ``r_row_ohm`` lies between the
  driver and cell (i, 0) and between cells (i, j) and (i, j+1). The row's right end is open.
- Column j runs from row 0 (top, open end) down to its TIA; a segment of ``r_col_ohm`` lies between
  cells (i, j) and (i+1, j) and between cell (R−1, j) and the TIA's virtual ground (0 V).
- Cell (i, j) is a conductance G[i, j] between its row node and its column node.

Kirchhoff's current law at every node, scaled by the segment resistance r (aᵢⱼ = r·Gᵢⱼ):

    row i:    −V_r[j−1] + (2 + a_j)·V_r[j] − V_r[j+1] = a_j·V_c[j]     (V_r[−1] = V_in; last: 1 + a)
    column j: −V_c[i−1] + (2 + a_i)·V_c[i] − V_c[i+1] = a_i·V_r[i]     (top: 1 + a; V_c[R] = 0)

and column j delivers I_j = V_c[R−1, j] / r_col to its TIA. Each line is a tridiagonal,
diagonally dominant system; `mesh_currents` solves them exactly in alternating row and column
sweeps (block Gauss–Seidel on a symmetric positive-definite system, so it converges for any
r ≥ 0; Golub & Van Loan, *Matrix Computations*, §11.2) until no voltage moves by more than
``tol`` of the largest drive. With r = 0 the tile is ideal: I = Gᵀ·V.

The network is linear in V, so the tile's transfer is a matrix: `effective_conductance` solves it
for the R unit drives once per programming, and the engine multiplies by it (the way Sandia's
CrossSim treats parasitics as a programmed-array property; here the result is checked against
ngspice on the same mesh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from circuits.errors import ParameterError

MAX_SWEEPS = 10_000


@dataclass(frozen=True, slots=True)
class Wires:
    """Wire resistance per cell pitch, in ohms, along rows and along columns."""

    r_row_ohm: float
    r_col_ohm: float

    def __post_init__(self) -> None:
        for name in ("r_row_ohm", "r_col_ohm"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ParameterError(f"{name}: wire resistance per cell must be a finite number ≥ 0 Ω, got {v}")

    @classmethod
    def uniform(cls, r_ohm: float) -> Wires:
        return cls(r_ohm, r_ohm)

    @property
    def ideal(self) -> bool:
        return self.r_row_ohm == 0 and self.r_col_ohm == 0


@njit(cache=True)
def _thomas(diag, off, rhs, out):  # pragma: no cover - compiled
    """Solve the symmetric tridiagonal system (diag, constant off-diagonal ``off``) in place into ``out``."""
    n = diag.size
    c = np.empty(n)
    d = np.empty(n)
    c[0] = off / diag[0]
    d[0] = rhs[0] / diag[0]
    for k in range(1, n):
        m = diag[k] - off * c[k - 1]
        c[k] = off / m
        d[k] = (rhs[k] - off * d[k - 1]) / m
    out[n - 1] = d[n - 1]
    for k in range(n - 2, -1, -1):
        out[k] = d[k] - c[k] * out[k + 1]


@njit(cache=True)
def _solve_mesh(g, v_in, r_row, r_col, tol, max_sweeps, currents):  # pragma: no cover - compiled
    """Column currents (B, P) of the tile for drives v_in (B, R); returns the sweeps used (−1: no convergence)."""
    n_r, n_p = g.shape
    worst = 0
    for b in range(v_in.shape[0]):
        vr = np.empty((n_r, n_p))
        vc = np.zeros((n_r, n_p))
        for i in range(n_r):
            vr[i, :] = v_in[b, i]
        scale = max(np.max(np.abs(v_in[b])), 1e-300)
        diag_r = np.empty(n_p)
        rhs_r = np.empty(n_p)
        line_r = np.empty(n_p)
        diag_c = np.empty(n_r)
        rhs_c = np.empty(n_r)
        line_c = np.empty(n_r)
        sweeps = -1
        for sweep in range(max_sweeps):
            moved = 0.0
            if r_row > 0:
                for i in range(n_r):
                    for j in range(n_p):
                        a = r_row * g[i, j]
                        diag_r[j] = 2.0 + a
                        rhs_r[j] = a * vc[i, j]
                    diag_r[n_p - 1] -= 1.0
                    rhs_r[0] += v_in[b, i]
                    _thomas(diag_r, -1.0, rhs_r, line_r)
                    for j in range(n_p):
                        moved = max(moved, abs(line_r[j] - vr[i, j]))
                        vr[i, j] = line_r[j]
            if r_col > 0:
                for j in range(n_p):
                    for i in range(n_r):
                        a = r_col * g[i, j]
                        diag_c[i] = 2.0 + a
                        rhs_c[i] = a * vr[i, j]
                    diag_c[0] -= 1.0
                    _thomas(diag_c, -1.0, rhs_c, line_c)
                    for i in range(n_r):
                        moved = max(moved, abs(line_c[i] - vc[i, j]))
                        vc[i, j] = line_c[i]
            if moved <= tol * scale or r_row == 0 or r_col == 0:
                if sweep > 0 or r_row == 0 or r_col == 0:
                    sweeps = sweep + 1
                    break
        if sweeps < 0:
            return -1
        worst = max(worst, sweeps)
        for j in range(n_p):
            if r_col > 0:
                currents[b, j] = vc[n_r - 1, j] / r_col
            else:
                s = 0.0
                for i in range(n_r):
                    s += g[i, j] * vr[i, j]
                currents[b, j] = s
    return worst


def mesh_currents(g_s: np.ndarray, v_in_v: np.ndarray, wires: Wires, tol: float = 1e-10) -> np.ndarray:
    """Column currents in amperes, (B, P), of a tile with conductances ``g_s`` (R, P) in siemens driven
    by row voltages ``v_in_v`` (B, R) or (R,), with the wire resistances ``wires`` (module docstring)."""
    g = np.ascontiguousarray(g_s, dtype=np.float64)
    v = np.atleast_2d(np.asarray(v_in_v, dtype=np.float64))
    if g.ndim != 2 or v.shape[1] != g.shape[0]:
        raise ParameterError(f"mesh: drives of shape {v.shape} for a tile of {g.shape} conductances")
    if np.any(g < 0) or not np.all(np.isfinite(g)):
        raise ParameterError("mesh: conductances must be finite and ≥ 0 S")
    if wires.ideal:
        return v @ g
    out = np.empty((v.shape[0], g.shape[1]))
    sweeps = _solve_mesh(g, np.ascontiguousarray(v), float(wires.r_row_ohm), float(wires.r_col_ohm),
                         float(tol), MAX_SWEEPS, out)
    if sweeps < 0:
        raise ParameterError(f"mesh: the IR-drop solution did not converge in {MAX_SWEEPS} sweeps "
                             f"(r·G·N² too large for a {g.shape[0]}×{g.shape[1]} tile; use smaller tiles)")
    return out


def effective_conductance(g_s: np.ndarray, wires: Wires, tol: float = 1e-10) -> np.ndarray:
    """The tile's transfer (R, P): column currents = V_in @ G_eff, solved for each unit row drive."""
    g = np.asarray(g_s, dtype=np.float64)
    if wires.ideal:
        return g.copy()
    return mesh_currents(g, np.eye(g.shape[0]), wires, tol)


__all__ = ["Wires", "effective_conductance", "mesh_currents"]
