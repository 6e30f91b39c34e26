"""Behavioural model families: a few physically meaningful parameters per primitive, fitted to ngspice.

Each family is a frozen dataclass holding the design constants of the characterized block
(weights, rails in model units, …) and maps ``params`` and sweep points ``x`` (rows, model
units) to outputs with a vectorized NumPy `predict`. It also gives the parameter names, an
initial guess (the ideal block) and bounds for `scipy.optimize.least_squares`.

| kind | family | y = | parameters |
|---|---|---|---|
| opamp.summer | summer | clamp(Σ wₖ·gₖ·xₖ + b + o) | gₖ per input, o |
| opamp.rectifier | rectifier | g·max(0, x−θ) + s·min(0, x−θ) + o | g, θ, s (leak), o |
| opamp.log | log | n·ln((x − x_os)/s) | n (slope), s (I_S-like scale), x_os |
| opamp.exp | exp | s·exp(x/n) + o | s (scale), n (slope), o |
| opamp.multiplier | multiplier | g·(a+o)^γa·(b+o)^γb − o·(1+δa)·a − o·(1+δb)·b − o²·(1+δ0) | g, γa, γb, δa, δb, δ0 |
| opamp.clipper | clipper | g·x + o − g_h·relu(x − h) + g_l·relu(l − x) | g, o, h, g_h, l, g_l |
| opamp.diffpair | diffpair | a·f(b·(x − x_os)) + o, f = tanh or sigmoid | a, b, x_os, o |
| opamp.divider | divider | s·(1 + d_s·s)·(g·(a + o + a_os)^γa/B^γb − g₀·o/B^γb₀) + c_s·s + c₀, s = sgn b, B = abs(b) − b_os | g, γa, a_os, g₀, γb, γb₀, b_os, d_s, c_s, c₀ |
| opamp.integrator | integrator | lossy integrator at time t (below) | g, x_os, y0 error, λ (leak) |
| crossbar.tiles | crossbar | Σ (wₖ + δwₖ)·xₖ + b + o | δwₖ per row, o |
| current.neuron | current_neuron | a·max(0, x − θ) + i_leak | a, θ, i_leak |
| current.synapse_array | synapse | w_unit·sgn(k)·k_eff·max(0, x − θ) | εₛ,ᵦ per bank and branch, θ |
| opamp.max | max_selector | g·max_k(x_k + o_k) | g, o_k per input |
| opamp.softmax | softmax | g·softmax(u)₀, u_k = β_k(x_k + o_k) − c_k·max x | g; β_k, o_k, c_k per input |
| opamp.matmul | matmul | Σₖ multiplier term (a_k, b_k) − K·o²·(1 + δ₀) | per term g, γa, γb, δa, δb; δ₀ |
| current.junction | junction | Σ gₖ(1 + εₖ)xₖ + b(1 + ε_b) + o | εₖ, ε_b, o |
| current.average | mirror_average | gain·Σ (1 + εₖ)xₖ + o | εₖ, o |
| current.wta | wta | max_k((1 + εₖ)xₖ) + o | εₖ, o |
| current.softmax | current_softmax | g·softmax(u)₀ + c, u_k = β⁺_k·max(x_k, 0) + β⁻_k·min(x_k, 0) + o_k | g, c; β⁺_k, β⁻_k per input; o_k (k ≥ 1) |

``clamp`` is the op-amp macro's soft rail clamp (its rails and knee, in model units, are design
constants: the characterized range does not reach them). Integrator: with s = t/τ the time
since the reset, y = (y0 + Δy0)·e^(−λs) − g·(x − x_os)·(1 − e^(−λs))/λ (λ → 0: the ideal
y0 − g·(x − x_os)·s). Synapse (Binas et al. 2016): level k = ±(4·b₂ + 2·b₁ + b₀) switches
branches of ratios 4/2/1 of the positive (PMOS) or negative (NMOS) bank,
k_eff = Σ bitᵦ·rᵦ·(1 + εₛ,ᵦ); the soma chain's own gain is folded into the ε.
"""

from circuits.errors import UnsupportedError
from sim.characterize import families_arrays, families_opamp, families_select
from sim.characterize.family_base import FAMILIES, Family, register


def family_class(kind: str) -> type[Family]:
    """The family registered for ``kind`` (this module imports every family module, which registers them);
    UnsupportedError lists the kinds that have one."""
    try:
        return FAMILIES[kind]
    except KeyError:
        raise UnsupportedError(f"no behavioural model family for {kind!r} "
                               f"(families exist for: {', '.join(sorted(FAMILIES))})") from None


__all__ = ["FAMILIES", "Family", "families_arrays", "families_opamp", "families_select", "family_class", "register"]
