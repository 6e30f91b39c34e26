"""The demo's report: PNG plots (matplotlib), report.md and report.html readable on their own.

Plots: transfer.png (measured soma currents against the fitted model's input current, the neuron
transfer curves), gains.png (fitted row and column gains), accuracy.png (every deployment, engine
and ngspice), spice_vs_engine.png (output currents), training.png (the three trainings' curves),
yield.png (accuracy over chip instances).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from circuits.files import write_text
from sim.figures import pyplot, save_png

BINAS_TOPS_PER_J = 7.0  # Binas et al. 2016, 196-50-10 MNIST network (SCIENCE.md)


def _label_and_save(fig, path: Path, axes, xlabels, ylabels) -> None:
    for a, x, y in zip(axes, xlabels, ylabels):
        a.set_xlabel(x)
        a.set_ylabel(y)
        a.legend(fontsize=7)
    save_png(fig, path)


def write_report(out: Path, report: dict[str, Any], *, meas, chip, histories: dict[str, list[dict]],
                 spice: dict[str, Any], yields: dict[str, dict]) -> None:
    """Every plot, then report.md and report.html (report.json is the caller's)."""
    _transfer(out / "transfer.png", meas, chip)
    _gains(out / "gains.png", chip)
    _accuracy(out / "accuracy.png", report)
    _scatter(out / "spice_vs_engine.png", spice)
    _training(out / "training.png", histories)
    _yield(out / "yield.png", yields)
    md = markdown(report)
    write_text(out / "report.md", md)
    write_text(out / "report.html", _html(report))


def _transfer(path: Path, meas, chip) -> None:
    from sim.measure.fit import preactivations
    plt = pyplot()
    pre = preactivations(meas, chip)
    banks = list(pre)
    fig, axes = plt.subplots(1, len(banks), figsize=(4.2 * len(banks), 3.6), squeeze=False)
    for ax, name in zip(axes[0], banks):
        p, m = pre[name], meas.soma[name]
        for r in range(min(p.shape[1], 6)):
            ax.scatter(p[:, r], m[:, r], s=10, label=f"soma {r}")
        lo, hi = float(np.nanmin(p)), float(np.nanmax(p))
        grid = np.linspace(lo, hi, 50)
        ax.plot(grid, np.maximum(grid, 0), "k-", lw=1, label="fitted: max(0, input)")
        ax.set_xlabel("fitted input current (units)")
        ax.set_ylabel("measured soma current (units)")
        ax.set_title(f"bank {name}: {p.shape[1]} somas, {meas.probes} operating points", fontsize=9)
        ax.legend(fontsize=6)
    save_png(fig, path)


def _gains(path: Path, chip) -> None:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, b in chip.banks.items():
        a1.hist(b.a.reshape(-1), bins=30, alpha=0.6, label=name)
        a2.hist(b.c.reshape(-1), bins=30, alpha=0.6, label=name)
    _label_and_save(fig, path, (a1, a2), ("row gain A[row, sign, bit] (nominal 1)", "column gain c[column, sign] "
                                          "(nominal 1)"), ("count", "count"))


ACCURACY_ROWS = [("ideal_accuracy", "ideal (ONNX)"), ("quantized_accuracy", "nominal chip (3-bit levels)"),
                 ("chip_naive_accuracy", "chip S, naive"), ("chip_aware_measured_accuracy", "chip S, aware (measured)"),
                 ("chip_aware_oracle_accuracy", "chip S, aware (oracle)"),
                 ("spice_naive_accuracy", "ngspice, naive"), ("spice_aware_accuracy", "ngspice, aware (measured)")]


def _accuracy(path: Path, report: dict[str, Any]) -> None:
    plt = pyplot()
    n = report.get("spice_samples")
    names = [label + (f" ({n} inputs)" if k.startswith("spice") else "") for k, label in ACCURACY_ROWS]
    vals = [100 * report[k] for k, _ in ACCURACY_ROWS]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colors = ["#888", "#aaa", "#d62728", "#2ca02c", "#1f77b4", "#ff9896", "#98df8a"]
    ax.barh(names[::-1], vals[::-1], color=colors[::-1])
    for i, v in enumerate(vals[::-1]):
        ax.text(v, i, f" {v:.1f} %", va="center", fontsize=8)
    ax.set_xlim(min(vals) - 10, 100)
    ax.set_xlabel("test accuracy (%)")
    save_png(fig, path)


def _scatter(path: Path, spice: dict[str, Any]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, color in (("naive", "#d62728"), ("aware", "#2ca02c")):
        e, z = spice[f"{name}_engine"].reshape(-1), spice[f"{name}_spice"].reshape(-1)
        ax.scatter(e, z, s=6, alpha=0.6, color=color, label=f"{name}: RMS {spice[f'{name}_rms_pct_fs']:.1f} % FS")
    lo = min(float(np.min(spice["aware_engine"])), float(np.min(spice["aware_spice"])))
    hi = max(float(np.max(spice["aware_engine"])), float(np.max(spice["aware_spice"])))
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel("engine, chip model (units)")
    ax.set_ylabel("ngspice, chip netlist (units)")
    ax.set_title(f"outputs of {spice['samples']} test inputs", fontsize=9)
    ax.legend(fontsize=7)
    save_png(fig, path)


def _training(path: Path, histories: dict[str, list[dict]]) -> None:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, h in histories.items():
        ep = [r["epoch"] for r in h]
        a1.plot(ep, [r["train_loss"] for r in h], label=name)
        a2.plot(ep, [100 * (r.get("test_accuracy") or 0) for r in h], label=name)
    _label_and_save(fig, path, (a1, a2), ("epoch", "epoch"),
                    ("training loss", "test accuracy on the training model (%)"))


def _yield(path: Path, yields: dict[str, dict]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, y in yields.items():
        ax.hist(100 * np.asarray(y["accuracies"]), bins=15, alpha=0.6,
                label=f"{name}: mean {100 * y['mean']:.1f} %, p5 {100 * y['p5']:.1f} %")
    ax.set_xlabel(f"test accuracy on each of {next(iter(yields.values()))['chips']} chip instances (%)")
    ax.set_ylabel("chips")
    ax.legend(fontsize=7)
    save_png(fig, path)


def _rel(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _plan(p: dict | None) -> str:
    if not p:
        return "n/a"
    kind = "dense" if p["density"] >= 1 else f"sparse, {100 * p['density']:.0f} % of the widest bank's synapses programmed in each"
    return f"{p['configurations']} configurations × {p['probes_per_configuration']} operating points ({kind})"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _sections(r: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    eff = r.get("macs_per_joule")
    ops = r.get("ops_per_joule")
    return [
        ("Accuracy", [(label, _pct(r[k])) for k, label in ACCURACY_ROWS] + [
            ("test samples (engine) / ngspice samples", f"{r['test_samples']} / {r['spice_samples']}"),
            ("engine-ngspice argmax agreement (aware / naive)",
             f"{_pct(r['engine_spice_argmax_agreement'])} / {_pct(r['engine_spice_argmax_agreement_naive'])}"),
            ("engine-ngspice output RMS (aware)", f"{r['engine_spice_rms_pct_fs']:.2f} % of full scale"),
            ("measured model vs oracle model, RMS", f"{r['measured_vs_oracle_rms_pct_fs']:.2f} % of full scale")]),
        ("Measurement", [
            ("ngspice operating points", str(r["measurement_simulations"])),
            ("plan", _plan(r.get("measurement_plan"))),
            ("wall time", f"{r['measurement_seconds']} s"),
            *[(f"bank {b}: identified row / column factors / synapse values",
               f"{100 * v['row_identified_fraction']:.0f} % / {100 * v['column_identified_fraction']:.0f} % / "
               f"{100 * v.get('synapse_identified_fraction', 0.0):.0f} % of {v.get('synapse_values', 0)} "
               f"(median sd {v['row_median_sd']:.3f} / {v['column_median_sd']:.3f}; {v['equations']} equations, "
               f"residual {_rel(v['rms_relative_residual'])} factors, "
               f"{_rel(v.get('synapse_rms_relative_residual'))} per synapse)")
              for b, v in r["measurement_identifiability"].items()]]),
        ("Speed and energy (ngspice transients)", [
            ("settling time (1 %)", f"{r.get('settling_time_s', float('nan')):.3g} s"),
            ("energy per inference", f"{r.get('energy_per_inference_j', float('nan')):.3g} J"),
            ("MACs per joule / ops per joule", f"{eff:.3g} / {ops:.3g}" if eff and ops else "n/a"),
            ("Binas et al. 2016", f"about {BINAS_TOPS_PER_J:g} TOp/J (one op = one MAC; 196-50-10 MNIST, simulated)"),
            ("against Binas et al.", _against_binas(r)),
            ("digital reference (Horowitz 45 nm)", _digital(r.get("digital_reference")))]),
        ("Yield (engine, unseen chips)", [
            (name, f"mean {_pct(y['mean'])}, sd {_pct(y['std'])}, p5 {_pct(y['p5'])}, worst {_pct(y['worst'])} "
                   f"over {y['chips']} chips") for name, y in r["yield"].items()]),
    ]


def _against_binas(r: dict[str, Any]) -> str:
    """The efficiency ratio and what differs from Binas et al.'s figure (their energy definition is ours)."""
    eff = r.get("macs_per_joule")
    if not eff or not np.isfinite(eff):
        return "n/a (no transient energy)"
    same = "the same network" if r.get("network") == "196-50-10" else f"a {r.get('network')} network, not their 196-50-10"
    return (f"{eff / (BINAS_TOPS_PER_J * 1e12):.2f}x their MACs per joule. The energy is defined as theirs "
            f"(∫VDD·I dt until the argmax stops changing, median over the transients). {same.capitalize()}; what "
            f"differs is the device card (Kelvin's generic 180 nm BSIM3, not their process), the unit current "
            f"({r.get('scale_a', 1e-8):.3g} A per unit: a larger one draws more power but settles sooner), the "
            f"{r.get('sizing', 'default')} mirror sizing and the inputs the transients start from.")


def _digital(ref: dict[str, Any] | None) -> str:
    """The digital reference per number format, with the Horowitz constants it uses."""
    if not ref:
        return "n/a"
    from sim.energy import HOROWITZ_45NM_PJ
    rows = [f"{f}: {e:.3g} J per inference ({ref['macs_per_j'][f]:.3g} MAC/J; "
            f"{HOROWITZ_45NM_PJ[f + '_mult']:g} pJ mult + {HOROWITZ_45NM_PJ[f + '_add']:g} pJ add)"
            for f, e in ref["energy_j"].items()]
    return "; ".join(rows) + " (Horowitz, ISSCC 2014, 45 nm)"


def _recipe(t: dict[str, Any] | None) -> str:
    """" (adam, lr 0.002, batch 32, cosine schedule)" from report.json's ``training``; "" without one."""
    if not t:
        return ""
    return f" ({t['optimizer']}, lr {t['lr']:g}, batch {t['batch_size']}, {t['schedule']} schedule)"


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Kelvin demo: Binas et al. on a measured chip ({r['dataset']}, {r['network']}, chip {r['seed']})", "",
             f"Sizing `{r['sizing']}`; aware training {r['epochs']} epochs{_recipe(r.get('training'))}; "
             f"total {r['seconds']} s.", ""]
    for title, rows in _sections(r):
        lines += [f"## {title}", "", "| | |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], ""]
    lines += ["## Files", "", f"- aware chip netlist: `{r['netlist']}` (runs alone: `ngspice -b netlist.cir`)",
              "- measurements.npz: the lab record (`kelvin fit-chip` reads it); fits/: the fitted chip model",
              "- naive.onnx, aware.onnx: the deployed weights", "",
              "![accuracy](accuracy.png)", "![transfer](transfer.png)", "![gains](gains.png)",
              "![spice vs engine](spice_vs_engine.png)", "![training](training.png)", "![yield](yield.png)", ""]
    return "\n".join(lines)


def _html(r: dict[str, Any]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Kelvin demo</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:2px 10px}"
             "tr:nth-child(even){background:#f4f4f4}</style></head><body>",
             f"<h1>Kelvin demo: Binas et al. on a measured chip</h1><p>{e(r['dataset'])}, network "
             f"{e(r['network'])}, chip seed {r['seed']}, sizing {e(r['sizing'])}, total {r['seconds']} s</p>"]
    for title, rows in _sections(r):
        parts.append(f"<h2>{e(title)}</h2><table>")
        parts += [f"<tr><td>{e(a)}</td><td>{e(b)}</td></tr>" for a, b in rows]
        parts.append("</table>")
    parts.append(f"<h2>Files</h2><p>Aware chip netlist: <code>{e(r['netlist'])}</code></p>")
    for img in ("accuracy", "transfer", "gains", "spice_vs_engine", "training", "yield"):
        parts.append(f"<h3>{img.replace('_', ' ')}</h3><img src='{img}.png' style='max-width:100%'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
