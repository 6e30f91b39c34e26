"""Entry points for ``kelvin characterize`` and ``kelvin fit`` (the CLI parses, these do the work).

The shipped fits in ``models/fits/`` are regenerated with the defaults (seed 0, 64 instances,
48 points per sweep; about 30 s on 2 cores)::

    kelvin characterize --all -o out/char && kelvin fit out/char -o models/fits

``characterize`` resumes: run it again after an interruption and only the missing jobs are
simulated. Both return a summary dict (JSON-ready); `format_characterize` and `format_fit`
turn it into the text the CLI prints.

Their output directories are Kelvin outputs like the others (`circuits.files.check_output`): each
holds a ``kelvin.json`` of kind "characterization" or "fits", and a non-empty directory without one
(a user's folder) or of another kind (a compile) is refused before any work. A directory that either
command wrote before they recorded kelvin.json is known by its content (`circuits.files.output_kind`).
Re-running into one's own kind of directory still adds to it: ``characterize`` of more kinds or
instances resumes there, file by file (a staged copy would lose an interrupted run's simulations);
``fit`` replaces the families it fits and keeps the other fit files, swapping in the whole
directory at once (`circuits.files.staged_dir`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from circuits.errors import InputError, OutputError
from circuits.files import check_output, dir_lock, ensure_dir, staged_dir, write_json
from sim.characterize.fit import DEFAULT_MAX_RMS_PCT_FS, FitError, fit_data, write_fit
from sim.characterize.store import CharacterizationDataError, load_data
from sim.characterize.simulate import DEFAULT_BATCH, simulate_sweeps
from sim.characterize.sweeps import DEFAULT_TIMEOUT_S, plan, resolve_kinds

_log = logging.getLogger(__name__)

DEFAULT_INSTANCES = 64
DEFAULT_POINTS = 48
DEFAULT_SEED = 0
CHARACTERIZATION_KIND = "characterization"
FITS_KIND = "fits"
KELVIN_JSON = "kelvin.json"


def characterize(kinds: Sequence[str] | None, outdir: str | Path, instances: int = DEFAULT_INSTANCES,
                 points: int = DEFAULT_POINTS, seed: int = DEFAULT_SEED, workers: int | None = None,
                 executor: Executor | None = None, progress: bool = True, max_jobs: int | None = None,
                 batch: int = DEFAULT_BATCH, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Simulate the nominal circuit and ``instances`` Monte Carlo chips of each kind (None/"all": every kind).

    Results go to ``outdir/<kind>/`` (see `sim.characterize.store`); jobs already there are reused.
    ``max_jobs`` caps the new simulations of this call (the next call continues); ``timeout_s``
    limits each ngspice job (one chip's whole sweep).
    """
    start = time.perf_counter()
    sweeps = [plan(k, instances=instances, points=points, seed=seed, timeout_s=timeout_s)
              for k in resolve_kinds(kinds)]
    out = check_output(outdir, directory=True, kind=CHARACTERIZATION_KIND)  # before minutes of ngspice
    with dir_lock(out):  # one run at a time, and never while another command swaps the directory
        _record_kind(ensure_dir(out), CHARACTERIZATION_KIND)
        per_kind = simulate_sweeps(sweeps, Path(outdir), workers=workers, executor=executor, progress=progress,
                                   max_jobs=max_jobs, batch=batch)
    return {"outdir": str(outdir), "seed": seed, "instances": instances, "points": points, "kinds": per_kind,
            "simulated": sum(k["simulated"] for k in per_kind), "reused": sum(k["reused"] for k in per_kind),
            "remaining": sum(k["remaining"] for k in per_kind), "elapsed_s": time.perf_counter() - start}


def kind_folders(data_dir: str | Path) -> list[Path]:
    """The characterization folders in ``data_dir`` (or ``data_dir`` itself if it is one)."""
    root = Path(data_dir)
    if (root / "manifest.json").is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: no such characterization folder (run kelvin characterize -o {root} first)")
    found = sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())
    if not found:
        raise InputError(f"{root}: holds no characterization data (no */manifest.json); run kelvin characterize")
    return found


def fit(data_dir: str | Path, out_dir: str | Path, max_rms_pct_fs: float = DEFAULT_MAX_RMS_PCT_FS,
        progress: bool = False) -> dict[str, Any]:
    """Fit every characterized kind in ``data_dir``; write ``out_dir/<family>.json`` for each.

    The fits are written as a set: if any family fails, one FitError lists every failure and
    nothing is written (earlier files in ``out_dir`` stay as they were). ``out_dir`` must be new,
    empty or a fits directory (see the module docstring), and not the data it reads.
    """
    start = time.perf_counter()
    docs, done, failed = [], [], []
    folders = kind_folders(data_dir)
    _check_fit_output(data_dir, folders, out_dir)
    for folder in folders:
        data = _load(folder)
        try:
            docs.append(fit_data(data, max_rms_pct_fs=max_rms_pct_fs, progress=progress))
        except FitError as exc:
            failed.append(str(exc))
    if failed:
        raise FitError(f"{len(failed)} famil{'y' if len(failed) == 1 else 'ies'} did not fit, so no fit was "
                       f"written to {out_dir}: " + " | ".join(failed))
    written = {f"{d['family']}.json" for d in docs}
    others = sorted(p.name for p in Path(out_dir).glob("*.json") if p.name not in written | {KELVIN_JSON}) \
        if Path(out_dir).is_dir() else []
    if others:  # kept: fits of other kinds may come from separate runs on purpose, but say it
        _log.warning("%s also holds %s from an earlier fit (kept; `--fits %s` uses them with these)",
                     out_dir, ", ".join(others), out_dir)
    with staged_dir(out_dir, frozenset(written | {KELVIN_JSON}), kind=FITS_KIND) as stage:
        for doc in docs:
            write_fit(doc, stage)
        write_json(stage / KELVIN_JSON, {"kind": FITS_KIND})
    for doc in docs:
        path = Path(out_dir) / f"{doc['family']}.json"
        fid = doc["fidelity"]
        done.append({"kind": doc["kind"], "family": doc["family"], "path": str(path),
                     "instances": doc["population"]["instances"], "held_out_points": fid["held_out_points"],
                     "rms_pct_fs": fid["rms_pct_fs"], "max_pct_fs": fid["max_pct_fs"],
                     "worst_instance_rms_pct_fs": fid["worst_instance_rms_pct_fs"]})
        _log.info("fitted %s: %.4f %% FS rms held-out", doc["family"], fid["rms_pct_fs"])
    return {"data_dir": str(data_dir), "out_dir": str(out_dir), "families": done,
            "elapsed_s": time.perf_counter() - start}


def _record_kind(out: Path, kind: str) -> None:
    """Write ``out/kelvin.json`` naming its kind, unless it has one (checked to be this kind), so a
    directory written before kinds were recorded becomes an ordinary Kelvin output."""
    if not (out / KELVIN_JSON).is_file():
        write_json(out / KELVIN_JSON, {"kind": kind})


def _check_fit_output(data_dir: str | Path, folders: list[Path], out_dir: str | Path) -> None:
    """Refuse ``out_dir`` before any fitting if it is the characterization data being read (or inside
    one of its kind folders), or a directory a fits output may not replace (`check_output`).
    A fits folder beside the kind folders (``fit out/char -o out/char/fits``) is allowed."""
    out, root = Path(out_dir).resolve(), Path(data_dir).resolve()
    inside = [f for f in (f.resolve() for f in folders) if out == f or f in out.parents]
    if out == root or inside:
        raise OutputError(f"-o {out_dir}: is {'inside ' if out != root and out not in inside else ''}the "
                          f"characterization data `kelvin fit` reads ({data_dir}); choose another directory "
                          "for the fits")
    check_output(out_dir, directory=True, kind=FITS_KIND)


def _load(folder: Path):
    """`load_data`, with a manifest that lacks a field (or has a wrong one) as one clear error."""
    try:
        return load_data(folder)
    except KeyError as exc:
        raise CharacterizationDataError(f"{folder / 'manifest.json'}: has no field {exc}; the folder was kept - "
                                        "re-run kelvin characterize into a new folder") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise CharacterizationDataError(f"{folder / 'manifest.json'}: malformed ({type(exc).__name__}: {exc}); "
                                        "the folder was kept - re-run kelvin characterize into a new "
                                        "folder") from exc


def format_characterize(summary: dict[str, Any]) -> str:
    """A table of jobs per kind: simulated now, reused from an earlier run, still missing."""
    lines = [f"{'kind':<24} {'jobs':>5} {'simulated':>9} {'reused':>7} {'missing':>7}  folder"]
    for k in summary["kinds"]:
        lines.append(f"{k['kind']:<24} {k['jobs']:>5} {k['simulated']:>9} {k['reused']:>7} "
                     f"{k['remaining']:>7}  {k['dir']}")
    lines.append(f"{summary['simulated']} simulated, {summary['reused']} reused, {summary['remaining']} missing "
                 f"(seed {summary['seed']}, {summary['instances']} instances, {summary['points']} points) "
                 f"in {summary['elapsed_s']:.1f} s")
    return "\n".join(lines)


def format_fit(summary: dict[str, Any]) -> str:
    """A table of fitted families with their held-out fidelity."""
    lines = [f"{'family':<16} {'kind':<24} {'chips':>5} {'rms %FS':>8} {'max %FS':>8}  file"]
    for f in summary["families"]:
        lines.append(f"{f['family']:<16} {f['kind']:<24} {f['instances']:>5} {f['rms_pct_fs']:>8.4f} "
                     f"{f['max_pct_fs']:>8.4f}  {f['path']}")
    lines.append(f"{len(summary['families'])} families fitted (held-out points) in {summary['elapsed_s']:.1f} s")
    return "\n".join(lines)
