"""The training loop: minibatches through a `Program`, an optimizer, checkpoints every epoch.

Determinism: one seed gives the data order (its own generator), the hardware models' fresh draws
(another), and the converter calibration at each epoch's start; a checkpoint stores the parameters, the
optimizer state, both generators' states, the calibration and the epoch, so a resumed run ends
with byte-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from circuits.errors import InputError, KelvinError, OutputError
from circuits.files import ensure_dir, output_kind, read_npz, write_npz
from sim.engine.program import Program
from sim.train.data import Dataset
from sim.train.loss import accuracy, loss_and_grad
from sim.train.optim import make_optimizer
from sim.train.schedule import SCHEDULES, scheduled_lr

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.npz"
CHECKPOINT_VERSION = 1


class TrainingError(KelvinError):
    """Training stopped (a non-finite loss, a checkpoint from another run); the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.01
    schedule: str = "constant"   # "cosine": anneal to zero over the run (`sim.train.optim.scheduled_lr`)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str = "ce"
    seed: int = 0
    pipelined: bool = False

    def check(self) -> None:
        """Types and ranges, each refusal naming its option (a config built in Python skips argparse)."""
        def integer(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not (integer(self.epochs) and self.epochs >= 1):
            raise InputError(f"--epochs: an integer ≥ 1, got {self.epochs!r}")
        if not (integer(self.batch_size) and self.batch_size >= 1):
            raise InputError(f"--batch-size: an integer ≥ 1, got {self.batch_size!r}")
        if not (integer(self.seed) and self.seed >= 0):
            raise InputError(f"--seed: a non-negative integer, got {self.seed!r}")
        for option, value in (("--lr", self.lr), ("--momentum", self.momentum), ("--weight-decay", self.weight_decay)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise InputError(f"{option}: a number, got {value!r}")
        for option, value in (("--optimizer", self.optimizer), ("--loss", self.loss),
                              ("--lr-schedule", self.schedule)):
            if not isinstance(value, str):
                raise InputError(f"{option}: a name, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"--lr-schedule: one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not isinstance(self.pipelined, bool):
            raise InputError(f"--pipelined: True or False, got {self.pipelined!r}")


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    train_seconds: float = 0.0
    samples: int = 0
    resumed_from: int | None = None

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else 0.0


def evaluate(program: Program, x: np.ndarray, y: np.ndarray, loss: str, batch_size: int = 512,
             seed: int = 0) -> tuple[float, float | None, np.ndarray]:
    """(mean loss, accuracy or None, outputs) of ``program`` on a split, hardware draws from ``seed``."""
    rng = np.random.default_rng(seed)
    name, out = program.inputs[0], program.outputs[0]
    parts = [program.run({name: x[i:i + batch_size]}, rng=rng)[out] for i in range(0, len(x), batch_size)]
    z = np.concatenate(parts, axis=0)
    value, _ = loss_and_grad(loss, z, y)
    return value, accuracy(z, y), z


def run_id(program: Program, data: Dataset, cfg: TrainConfig, hardware: dict) -> str:
    """What a checkpoint must match to be resumed: parameter names/shapes, data, config, hardware."""
    h = hashlib.sha256()
    for k in sorted(program.params):
        h.update(f"{k}{program.params[k].shape}".encode())
    h.update(json.dumps({"cfg": asdict(cfg), "hw": hardware, "data": data.name,
                         "n": len(data.x_train)}, sort_keys=True, default=str).encode())
    for a in (data.x_train, data.y_train):  # the data's content: a file of the same name may have changed
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def check_checkpoint_dir(checkpoint_dir: str | os.PathLike[str] | None, *, resume: bool = False) -> Path | None:
    """The checkpoint file in ``checkpoint_dir`` (None without one), refusing a directory it must not
    write into: checkpoint.npz would land in a compile output, a source checkout or a user's folder.

    The directory may be new, empty, or one an earlier run checkpointed into (it holds a Kelvin
    ``checkpoint.npz``, so a run may replace it or ``resume`` from it); another Kelvin output (a
    ``kelvin.json``, or an older fits or characterization directory) and any other non-empty directory
    are refused with one line naming ``--checkpoint``. Called by `train` and, before compiling, by
    `sim.train.commands.train_file`.
    """
    if checkpoint_dir is None:
        return None
    d = Path(checkpoint_dir)
    try:
        is_dir = d.is_dir()
        if d.exists() and not is_dir:
            raise TrainingError(f"--checkpoint {d}: exists and is not a directory")
        entries = sorted(e.name for e in d.iterdir() if not _checkpoint_temp(e.name)) if is_dir else []
    except OSError as exc:
        raise OutputError(f"--checkpoint {d}: not a usable directory ({exc.strerror or exc})") from exc
    if not entries:
        return d / CHECKPOINT
    kind = output_kind(d)
    if kind is not None:
        raise OutputError(f"--checkpoint {d}: holds a Kelvin {kind} output, not checkpoints; give a directory of "
                          "its own (a new or empty one)")
    if CHECKPOINT not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OutputError(f"--checkpoint {d}: is not empty ({shown}) and holds no {CHECKPOINT} of an earlier "
                          "run; give a new or empty directory")
    if not resume and not _kelvin_checkpoint(d / CHECKPOINT):  # --resume reads it and says what is wrong
        raise OutputError(f"--checkpoint {d}: its {CHECKPOINT} is not a Kelvin checkpoint, and a run would "
                          "replace it; give a new or empty directory")
    return d / CHECKPOINT


def _checkpoint_temp(name: str) -> bool:
    """A temporary file of an interrupted checkpoint write (`circuits.files.write_bytes`), swept later."""
    return name.startswith(f".{CHECKPOINT}.") and name.endswith(".tmp")


def _kelvin_checkpoint(path: Path) -> bool:
    """Whether ``path`` looks like a checkpoint `_save_checkpoint` wrote (an npz with a ``meta`` member)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "meta.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def train(program: Program, data: Dataset, cfg: TrainConfig, *, hardware: dict | None = None,
          checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train ``program.params`` in place; see the module docstring."""
    cfg.check()
    hardware = hardware or {"mode": "ideal"}
    name, out_name = program.inputs[0], program.outputs[0]
    n = len(data.x_train)
    opt = make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    rng_data = np.random.default_rng([cfg.seed, 1])
    rng_hw = np.random.default_rng([cfg.seed, 2])
    ident = run_id(program, data, cfg, hardware)
    result = TrainResult()
    start_epoch = 0
    ckpt = check_checkpoint_dir(checkpoint_dir, resume=resume)
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise TrainingError(f"--resume: no checkpoint in {checkpoint_dir or '(no --checkpoint DIR given)'}; "
                                "train without --resume first")
        start_epoch = _load_checkpoint(ckpt, program, opt, rng_data, rng_hw, ident, result)
        result.resumed_from = start_epoch
    opt.warm_up(program.dtype)
    t_start = time.perf_counter()
    update = (lambda key, g: opt.step_one(key, program.params[key], g)) if cfg.pipelined else None
    per_epoch = -(-n // cfg.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        _calibrate(program, {name: data.x_train[: min(n, 256)]}, cfg.seed, epoch)
        t0 = time.perf_counter()
        order = rng_data.permutation(n)
        total_loss, correct, seen = 0.0, 0, 0
        with tqdm(total=n, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="sample", leave=False,
                  disable=not progress or None) as bar:
            for step, s in enumerate(range(0, n, cfg.batch_size)):
                idx = order[s:s + cfg.batch_size]
                xb, yb = data.x_train[idx], data.y_train[idx]
                with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught just below
                    outs, tape = program.forward({name: xb}, rng=rng_hw, train=True)
                    z = outs[out_name]
                    value, g = loss_and_grad(cfg.loss, z, yb)
                if not np.isfinite(value):
                    raise TrainingError(f"non-finite loss at epoch {epoch + 1}, step {step + 1}; lower --lr "
                                        f"(now {cfg.lr}) or check the data; the last good checkpoint is kept")
                opt.lr = scheduled_lr(cfg.lr, cfg.schedule, epoch * per_epoch + step, cfg.epochs * per_epoch)
                if cfg.pipelined:
                    opt.begin_step()
                    program.backward(tape, {out_name: g}, update=update)
                else:
                    opt.step(program.params, program.backward(tape, {out_name: g}))
                total_loss += value * len(idx)
                acc = accuracy(z, yb)
                correct += 0 if acc is None else int(round(acc * len(idx)))
                seen += len(idx)
                if bar.disable is not True:
                    bar.set_postfix(loss=f"{total_loss / seen:.4f}",
                                    acc=f"{correct / seen:.3f}" if data.classification else "-", refresh=False)
                bar.update(len(idx))
        train_s = time.perf_counter() - t0
        result.train_seconds += train_s
        result.samples += seen
        test_loss, test_acc, _ = evaluate(program, data.x_test, data.y_test, cfg.loss, seed=cfg.seed)
        row = {"epoch": epoch + 1, "train_loss": total_loss / seen,
               "train_accuracy": correct / seen if data.classification else None,
               "test_loss": test_loss, "test_accuracy": test_acc, "seconds": train_s}
        result.history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        if not np.all([np.all(np.isfinite(v)) for v in program.params.values()]):
            raise TrainingError(f"non-finite weights after epoch {epoch + 1}; lower --lr; the last good "
                                "checkpoint is kept")
        if ckpt is not None:
            _save_checkpoint(ckpt, program, opt, rng_data, rng_hw, ident, epoch + 1, result)
    result.seconds = time.perf_counter() - t_start
    return result


def _save_checkpoint(path: Path, program, opt, rng_data, rng_hw, ident, epoch, result) -> None:
    arrays = {f"p.{k}": v for k, v in program.params.items()}
    arrays.update(opt.state_arrays())
    meta = {"version": CHECKPOINT_VERSION, "run": ident, "epoch": epoch,
            "rng_data": rng_data.bit_generator.state, "rng_hw": rng_hw.bit_generator.state,
            "maps": program.map_state(), "history": result.history,
            "train_seconds": result.train_seconds, "samples": result.samples}
    arrays["meta"] = np.asarray(json.dumps(meta))
    ensure_dir(path.parent)
    write_npz(path, **arrays)


def _calibrate(program, feeds, seed: int, epoch: int) -> None:
    """Set the converters' full scales from the first training samples at the start of each epoch, as a
    chip's converters are calibrated for the weights it holds: fixed at the untrained network's range,
    an ADC clipped a trained CNN's outputs to a fiftieth of their span (digits: 39 % accuracy against
    96 % for the same network trained ideally and then quantized). Deterministic per (seed, epoch), so
    a resumed run recalibrates as the uninterrupted one did."""
    if program.reset_map_state():
        program.run(feeds, rng=np.random.default_rng([seed, 3] if epoch == 0 else [seed, 3, epoch]))


def _load_checkpoint(path: Path, program, opt, rng_data, rng_hw, ident, result) -> int:
    try:
        arrays = read_npz(path)
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: not a readable Kelvin checkpoint ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION or meta.get("run") != ident:
        raise TrainingError(f"{path}: a checkpoint of another model, data set or training setup; "
                            "resume with the same arguments, or train without --resume")
    try:  # a checkpoint Kelvin wrote has all of these; a damaged or edited one is named, not a KeyError
        for k in program.params:
            value = np.asarray(arrays[f"p.{k}"])
            if value.shape != program.params[k].shape or not np.isfinite(value).all():
                raise ValueError(f"parameter {k}: shape {value.shape} (the model's {program.params[k].shape}) "
                                 "or non-finite values")
            program.params[k][...] = value
        opt.load_state({k: v for k, v in arrays.items() if k.startswith("opt.")})
        rng_data.bit_generator.state = meta["rng_data"]
        rng_hw.bit_generator.state = meta["rng_hw"]
        program.load_map_state(meta["maps"])
        result.history = list(meta["history"])
        result.train_seconds = float(meta["train_seconds"])
        result.samples = int(meta["samples"])
        epoch = int(meta["epoch"])
        if not 0 <= epoch <= len(result.history):
            raise ValueError(f"epoch {epoch} with {len(result.history)} epochs of history")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrainingError(f"{path}: a damaged Kelvin checkpoint ({type(exc).__name__}: {exc}); train without "
                            "--resume") from exc
    return epoch
