"""Characterization data on disk: one folder per kind, one npz per simulated chip, resumable.

Layout of ``OUTDIR/<kind with '.' as '_'>/``:

| file | contents |
|---|---|
| ``manifest.json`` | format, kind, family and its design constants, the circuit, seed, points, instances, full scale, provenance (ngspice version, device-card and op-amp-card sha256, Kelvin version, created) |
| ``sweep.npz`` | ``points`` (rows, inputs) and ``held_out`` (rows,) |
| ``nominal.npz``, ``instance_0000.npz``, … | ``y`` (rows,) and the job's provenance: kind, seed, instance, instance_seed, netlist_sha256, ngspice, card hashes, kelvin_version |

Every file is written atomically (`circuits.files`). A chunk whose job is already stored is
skipped on the next run (resume). A corrupt file, or one recorded with another kind, seed, sweep,
netlist or device card, raises `CharacterizationDataError` naming the file and what differs; the
file is never deleted. Timestamps live only in the manifest, so the same seed gives the same npz
contents.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from circuits.data import model_file
from circuits.errors import InputError
from circuits.files import ensure_dir, read_npz, write_json, write_npz
from circuits.spice.devices import DeviceCard
from sim.characterize.families import Family, family_class
from sim.characterize.sweeps import NOMINAL, PlannedJob, Sweep, chunk_name

_log = logging.getLogger(__name__)

FORMAT = "kelvin-characterization"
VERSION = 1
CHECKED = ("kind", "seed", "instance", "instance_seed", "netlist_sha256", "ngspice", "device_card_sha256",
           "opamp_card_sha256")


class CharacterizationDataError(InputError):
    """A characterization file is corrupt or was made with other settings."""


def kelvin_version() -> str:
    try:
        return importlib.metadata.version("kelvin-analog")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provenance() -> dict[str, str]:
    """What the results depend on besides the netlists: simulator, device cards, Kelvin."""
    from sim.spice import ngspice_version

    card = DeviceCard.load()
    macro = model_file("devices", "opamp_macro.json").read_bytes()
    return {"ngspice": str(ngspice_version()), "device_card": card.name, "device_card_sha256": card.sha256,
            "opamp_card_sha256": hashlib.sha256(macro).hexdigest(), "kelvin_version": kelvin_version()}


def kind_dir(outdir: str | Path, kind: str) -> Path:
    return Path(outdir) / kind.replace(".", "_")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CharacterizationDataError(f"{path}: unreadable or corrupt characterization manifest ({exc}); "
                                        "the file was kept - delete the folder to start over") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CharacterizationDataError(f"{path}: not a Kelvin characterization manifest (format "
                                        f"{doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != VERSION:
        raise CharacterizationDataError(f"{path}: characterization format version {doc.get('version')!r}; this "
                                        f"Kelvin reads version {VERSION} - re-run kelvin characterize into a "
                                        "new folder")
    return doc


def _read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except (OSError, ValueError) as exc:
        raise CharacterizationDataError(f"{path}: unreadable or corrupt {what} ({type(exc).__name__}: {exc}); "
                                        "the file was kept - delete it to simulate it again") from exc


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """Provenance fields one level up (``provenance.ngspice``), so a difference names the field."""
    out = {k: v for k, v in d.items() if k != "provenance"}
    out.update({f"provenance.{k}": v for k, v in (d.get("provenance") or {}).items()})
    return out


def _differences(path: Path, recorded: dict[str, Any], wanted: dict[str, Any]) -> None:
    recorded, wanted = _flat(recorded), _flat(wanted)
    diff = [f"{k} {recorded.get(k)!r} (this run: {v!r})" for k, v in wanted.items() if recorded.get(k) != v]
    if diff:
        raise CharacterizationDataError(f"{path}: recorded with different settings: {'; '.join(diff)}; the file "
                                        "was kept - use another output folder or the settings it was made with")


@dataclass(frozen=True, slots=True)
class KindStore:
    """The folder of one kind's characterization, opened for a planned sweep."""

    path: Path
    sweep: Sweep
    prov: dict[str, str]

    @classmethod
    def open(cls, outdir: str | Path, sweep: Sweep, prov: dict[str, str]) -> KindStore:
        """Create the folder and its manifest, or check an existing one against this sweep."""
        path = ensure_dir(kind_dir(outdir, sweep.kind))
        store = cls(path, sweep, prov)
        manifest, bench = path / "manifest.json", sweep.bench
        wanted = store._manifest_fields()
        if manifest.exists():
            doc = _read_json(manifest)
            _differences(manifest, doc, {k: v for k, v in wanted.items() if k != "instances"})
            sw = _read_npz(path / "sweep.npz", "sweep file")
            if "points" not in sw or not np.array_equal(sw["points"], bench.points) \
                    or not np.array_equal(sw.get("held_out"), bench.held_out):
                raise CharacterizationDataError(f"{path / 'sweep.npz'}: its sweep points differ from this run's; "
                                                "the file was kept - use another output folder")
            if doc.get("instances", 0) < sweep.instances:
                write_json(manifest, {**doc, "instances": sweep.instances, "updated": _now()})
        else:
            write_npz(path / "sweep.npz", points=bench.points, held_out=bench.held_out)
            write_json(manifest, {"format": FORMAT, "version": VERSION, **wanted, "created": _now()})
        return store

    def _manifest_fields(self) -> dict[str, Any]:
        s, bench = self.sweep, self.sweep.bench
        fam = bench.family()
        return {"kind": s.kind, "family": fam.name, "family_design": fam.design(), "circuit": bench.design(),
                "seed": s.seed, "points": len(bench.points), "held_out_points": int(np.count_nonzero(bench.held_out)),
                "full_scale": bench.full_scale(), "instances": s.instances,
                "provenance": {k: v for k, v in self.prov.items() if k != "kelvin_version"}}

    def chunk_path(self, instance: int) -> Path:
        return self.path / f"{chunk_name(instance)}.npz"

    def _job_fields(self, pj: PlannedJob) -> dict[str, Any]:
        return {"kind": pj.kind, "seed": self.sweep.seed, "instance": pj.instance,
                "instance_seed": -1 if pj.instance_seed is None else pj.instance_seed,
                "netlist_sha256": pj.netlist_sha256, "ngspice": self.prov["ngspice"],
                "device_card_sha256": self.prov["device_card_sha256"],
                "opamp_card_sha256": self.prov["opamp_card_sha256"]}

    def has(self, pj: PlannedJob) -> bool:
        """Whether the job's result is stored (and matches it); raises for a corrupt or foreign file."""
        path = self.chunk_path(pj.instance)
        if not path.exists():
            return False
        z = _read_npz(path, "characterization result")
        if "y" not in z or z["y"].shape != (len(self.sweep.bench.points),):
            raise CharacterizationDataError(f"{path}: holds no output vector of {len(self.sweep.bench.points)} "
                                            "points; the file was kept - delete it to simulate it again")
        _differences(path, {k: z[k].item() if k in z else None for k in CHECKED}, self._job_fields(pj))
        return True

    def save(self, pj: PlannedJob, y: np.ndarray) -> Path:
        fields = {k: np.array(v) for k, v in self._job_fields(pj).items()}
        return write_npz(self.chunk_path(pj.instance), y=np.asarray(y, dtype=np.float64).reshape(-1),
                         kelvin_version=np.array(self.prov["kelvin_version"]), **fields)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class CharacterizationData:
    """One kind's stored characterization, ready to fit."""

    path: Path
    kind: str
    family: Family
    points: np.ndarray
    held_out: np.ndarray
    full_scale: float
    nominal: np.ndarray
    instances: np.ndarray  # (instances, rows)
    instance_seeds: tuple[int, ...]
    manifest: dict[str, Any]
    netlist_sha256: dict[str, Any]


def load_data(path: str | Path) -> CharacterizationData:
    """Read a kind folder written by `KindStore`; every listed instance must be there."""
    folder = Path(path)
    doc = _read_json(folder / "manifest.json")
    sw = _read_npz(folder / "sweep.npz", "sweep file")
    if "points" not in sw or "held_out" not in sw:
        raise CharacterizationDataError(f"{folder / 'sweep.npz'}: missing 'points' or 'held_out'")
    family = family_class(doc["kind"]).from_design(doc["family_design"])
    chunks = [_chunk(folder, doc, i, len(sw["points"])) for i in (NOMINAL, *range(int(doc["instances"])))]
    return CharacterizationData(
        folder, doc["kind"], family, sw["points"].astype(np.float64), sw["held_out"].astype(bool),
        float(doc["full_scale"]), chunks[0]["y"], np.stack([c["y"] for c in chunks[1:]]),
        tuple(int(c["instance_seed"]) for c in chunks[1:]), doc,
        {"nominal": str(chunks[0]["netlist_sha256"]), "instances": [str(c["netlist_sha256"]) for c in chunks[1:]]})


def _chunk(folder: Path, doc: dict[str, Any], instance: int, rows: int) -> dict[str, np.ndarray]:
    path = folder / f"{chunk_name(instance)}.npz"
    if not path.exists():
        raise CharacterizationDataError(f"{path}: not simulated yet ({doc['kind']}, {chunk_name(instance)}); run "
                                        "kelvin characterize again with the same settings to complete the folder")
    z = _read_npz(path, "characterization result")
    if "y" not in z or z["y"].shape != (rows,):
        raise CharacterizationDataError(f"{path}: holds no output vector of {rows} points")
    recorded = {k: z[k].item() if k in z else None for k in ("kind", "seed", "instance")}
    _differences(path, recorded, {"kind": doc["kind"], "seed": doc["seed"], "instance": instance})
    return z
