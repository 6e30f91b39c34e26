"""IR drop in crossbar tiles: the engine's model (`circuits.ir_drop`) against ngspice and a direct solve,
what ignoring the wires costs, and the accuracy cost on the digits MLP.

1. **ngspice tiles** (``--spice-sizes``, default 32 and 64 weights square, bias row included): the
   netlisted mesh (`circuits.spice.crossbar_tile.tile_subckt` with `Wires`) on ``--points`` inputs,
   against the engine's `wired_weights` and against the ideal W·x + b, at each ``--spice-ohms``.
2. **256 × 256 tile** (257 rows × 512 physical columns, 263,168 nodes) at each ``--ohms``, against an
   independent direct solve of the full nodal matrix (SciPy's SuperLU) and, with ``--ngspice BIN``,
   against an ngspice built with KLU (``.options klu``). ngspice 39 from Debian has no KLU, and its
   Sparse 1.3 Markowitz reorder grows about as nodes³ on this mesh (0.4 s at 32², 31 s at 64²
   measured, hours at 256²); ngspice ≥ 40 built from source (configure's default ``--enable-klu``)
   reorders the 64² mesh in 0.09 s with the same answer, and so does the ngspice 46 that Kelvin's
   setup installs from bookworm-backports (``--ngspice ngspice``).
3. **digits MLP** on the crossbar target (each layer in one 512 × 512 tile): test accuracy with
   ``--hardware irdrop`` at each ``--mlp-ohms``, against ideal.

Errors are in % of full scale, full scale being the largest |ideal output| over the inputs (the
range an ADC would be set to). Inputs are uniform in [0, 1] (post-ReLU activations, PWM-coded),
weights N(0, 0.5²). Prints a table and writes JSON next to this file; never fails on a time.

    python benchmarks/bench_ir_drop.py [--spice-sizes 32,64] [--ohms 0.05,0.1,0.2,0.5,1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from circuits.crossbar import CrossbarArray  # noqa: E402
from circuits.ir_drop import Wires  # noqa: E402
from circuits.spice.block import index_sweep, indexed_inputs  # noqa: E402
from circuits.spice.crossbar_blocks import CrossbarColumnBlock  # noqa: E402
from circuits.spice.crossbar_tile import tile_conductances, tile_subckt, wired_weights  # noqa: E402
from circuits.spice.netlist import Deck, instance  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t]


def layer(n: int, seed: int) -> CrossbarArray:
    rng = np.random.default_rng(seed)
    return CrossbarArray(rng.normal(0, 0.5, (n, n)), rng.normal(0, 0.3, n), tile_rows=4096, tile_cols=4096)


def errors(got: np.ndarray, want: np.ndarray, fs: float) -> dict[str, float]:
    e = (got - want) / fs * 100
    return {"rms_pct_fs": float(np.sqrt(np.mean(e ** 2))), "max_pct_fs": float(np.abs(e).max())}


def spice_tile(n: int, ohms: float, points: int, seed: int) -> dict:
    from sim.spice import SimJob, run_inline

    prim = layer(n, seed)
    cols = [CrossbarColumnBlock.from_primitive(prim, j) for j in range(n)]
    x = np.random.default_rng(seed + 1).uniform(0, 1, (points, n))
    ins, outs = [f"in_{i}" for i in range(n)], [f"out_{j}" for j in range(n)]
    wires = Wires.uniform(ohms)
    t0 = time.perf_counter()
    w_eff, b_eff = wired_weights(prim, wires)
    t_model = time.perf_counter() - t0
    tile = tile_subckt(cols, wires=wires)
    deck = Deck("wired tile", subckts=[cols[0].subckts()[0], tile])
    deck.elements += indexed_inputs(x, ins, cols[0].volts_per_unit)
    deck.elements.append(instance("dut", tile.name, (*ins, *outs)))
    t0 = time.perf_counter()
    res = run_inline(SimJob(f"tile{n}", index_sweep(deck, points).render(), 7200.0))
    t_spice = time.perf_counter() - t0
    if not res.ok:
        return {"size": n, "wire_ohm": ohms, "error": res.error}
    spice = np.stack([np.asarray(res.vectors[o]) / c.out_volts_per_unit for o, c in zip(outs, cols)], 1)
    ideal = prim.ideal(x)
    fs = float(np.abs(ideal).max())
    return {"size": n, "wire_ohm": ohms, "points": points, "model_vs_spice": errors(x @ w_eff.T + b_eff, spice, fs),
            "ideal_vs_spice": errors(ideal, spice, fs), "model_s": t_model, "spice_s": t_spice}


def klu_spice(deck_text: str, outs: list[str], binary: str, workdir: Path) -> tuple[np.ndarray, float]:
    """Run a deck in a separate ngspice binary with KLU; returns (points × outputs volts, seconds)."""
    import subprocess

    data = workdir / "klu_out.txt"
    control = ("\n.options klu\n.control\nset wr_singlescale\nset wr_vecnames\nrun\n"
               f"wrdata {data} " + " ".join(f"v({o})" for o in outs) + "\nquit\n.endc\n.end\n")
    text = deck_text.rsplit(".end", 1)[0] + control
    (workdir / "klu_deck.cir").write_text(text)
    t0 = time.perf_counter()
    proc = subprocess.run([binary, "-b", str(workdir / "klu_deck.cir")], capture_output=True, text=True, timeout=7200)
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or not data.is_file():
        raise RuntimeError(f"{binary}: {proc.stderr[-500:] or proc.stdout[-500:]}")
    table = np.atleast_2d(np.loadtxt(data, skiprows=1))
    return table[:, 1:], dt


def nodal_currents(g: np.ndarray, v: np.ndarray, wires: Wires) -> np.ndarray:
    """Column currents of the mesh from its full nodal matrix (row nodes, then column nodes), by SuperLU."""
    n_r, n_p = g.shape
    row = np.arange(n_r * n_p).reshape(n_r, n_p)
    col = row + n_r * n_p
    gr, gc = 1 / wires.r_row_ohm, 1 / wires.r_col_ohm
    links = [(row[:, :-1], row[:, 1:], np.full((n_r, n_p - 1), gr)),
             (col[:-1, :], col[1:, :], np.full((n_r - 1, n_p), gc)), (row, col, g)]
    i, j, val = [], [], []
    for a, b, c in links:
        a, b, c = a.ravel(), b.ravel(), c.ravel()
        i += [a, b, a, b]
        j += [a, b, b, a]
        val += [c, c, -c, -c]
    i += [row[:, 0], col[-1, :]]
    j += [row[:, 0], col[-1, :]]
    val += [np.full(n_r, gr), np.full(n_p, gc)]
    m = sp.csc_matrix((np.concatenate(val), (np.concatenate(i), np.concatenate(j))), shape=(2 * n_r * n_p,) * 2)
    rhs = np.zeros((2 * n_r * n_p, v.shape[0]))
    rhs[row[:, 0], :] = v.T * gr
    x = sla.splu(m).solve(rhs)
    return (x[col[-1, :], :] * gc).T


def direct_tile(n: int, ohms: float, points: int, seed: int, ngspice: str | None = None) -> dict:
    prim = layer(n, seed)
    cols = [CrossbarColumnBlock.from_primitive(prim, j) for j in range(n)]
    x = np.random.default_rng(seed + 1).uniform(0, 1, (points, n))
    wires = Wires.uniform(ohms)
    t0 = time.perf_counter()
    w_eff, b_eff = wired_weights(prim, wires)
    t_model = time.perf_counter() - t0
    g = tile_conductances(cols)
    v = np.concatenate([x, np.ones((points, 1))], 1) * cols[0].volts_per_unit  # bias row driven at x_fs
    t0 = time.perf_counter()
    cur = nodal_currents(g, v, wires)
    t_direct = time.perf_counter() - t0
    # column currents → model units: y = (I+ − I−)·w_max/(g_span·V_per_unit)
    scale = np.array([c.mapping().w_max / (c.mapping().g_span_s * c.volts_per_unit) for c in cols])
    direct = (cur[:, 0::2] - cur[:, 1::2]) * scale
    ideal = prim.ideal(x)
    fs = float(np.abs(ideal).max())
    row = {"size": n, "wire_ohm": ohms, "points": points, "model_vs_direct": errors(x @ w_eff.T + b_eff, direct, fs),
           "ideal_vs_direct": errors(ideal, direct, fs), "model_s": t_model, "direct_s": t_direct}
    if ngspice:
        import tempfile

        ins, outs = [f"in_{i}" for i in range(n)], [f"out_{j}" for j in range(n)]
        tile = tile_subckt(cols, wires=wires)
        deck = Deck("wired tile", subckts=[cols[0].subckts()[0], tile])
        deck.elements += indexed_inputs(x, ins, cols[0].volts_per_unit)
        deck.elements.append(instance("dut", tile.name, (*ins, *outs)))
        with tempfile.TemporaryDirectory() as tmp:
            volts, t_spice = klu_spice(index_sweep(deck, points).render(), outs, ngspice, Path(tmp))
        spice = volts / np.array([c.out_volts_per_unit for c in cols])
        row.update(model_vs_spice=errors(x @ w_eff.T + b_eff, spice, fs), ideal_vs_spice=errors(ideal, spice, fs),
                   direct_vs_spice=errors(direct, spice, fs), spice_s=t_spice, ngspice=ngspice)
    return row


def mlp_accuracy(ohms: list[float]) -> list[dict]:
    from sim.engine.prepare import HardwareOptions
    from sim.train.commands import evaluate_file

    model = str(Path(__file__).resolve().parents[1] / "models" / "examples" / "digits_mlp.onnx")
    rows = [{"wire_ohm": 0.0, "hardware": "ideal",
             "test_accuracy": evaluate_file(model, "digits", target="crossbar", progress=False)["test_accuracy"]}]
    for r in ohms:
        doc = evaluate_file(model, "digits", target="crossbar", progress=False,
                            hardware=HardwareOptions(modes=("irdrop",), wire_ohm=r))
        rows.append({"wire_ohm": r, "hardware": "irdrop", "test_accuracy": doc["test_accuracy"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spice-sizes", default="32,64", help="ngspice tile sizes (weights square)")
    ap.add_argument("--spice-ohms", default="1,5,20", help="wire resistances per cell for the ngspice tiles")
    ap.add_argument("--points", type=int, default=8, help="input vectors per tile")
    ap.add_argument("--size", type=int, default=256, help="the large tile, checked against the direct solve")
    ap.add_argument("--ohms", default="0.05,0.1,0.2,0.5,1,2", help="wire resistances for the large tile")
    ap.add_argument("--mlp-ohms", default="1,5,10,20,50,100", help="wire resistances for the digits MLP")
    ap.add_argument("--ngspice", help="an ngspice binary with KLU for the large tile (e.g. built from source)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args(argv)
    doc: dict = {"spice": [], "direct": [], "mlp": []}
    for n in [int(s) for s in args.spice_sizes.split(",") if s]:
        for r in floats(args.spice_ohms):
            row = spice_tile(n, r, args.points, args.seed)
            doc["spice"].append(row)
            print(json.dumps(row), flush=True)
    for r in floats(args.ohms):
        row = direct_tile(args.size, r, args.points, args.seed, args.ngspice)
        doc["direct"].append(row)
        print(json.dumps(row), flush=True)
    doc["mlp"] = mlp_accuracy(floats(args.mlp_ohms))
    print(json.dumps(doc["mlp"]))
    Path(args.output).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
