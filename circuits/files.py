"""Atomic file output: write a temporary file beside the target, then rename over it.

A crash or a full disk never leaves a half-written result, and an older good file stays.
A directory of results (``kelvin compile``'s OUTDIR) is built whole in a hidden sibling and
swapped in by one rename (`staged_dir`), under a lock file, so its files always come from one run.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import io
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from circuits.errors import OutputError


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create a directory (and parents), or raise OutputError saying why it cannot be."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{p}: cannot create output directory ({exc.strerror or exc})") from exc
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: output directory is not writable")
    return p


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    p = Path(path)
    tmp = None
    _sweep_dead_temps(p)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{os.getpid()}.", suffix=".tmp", dir=p.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        tmp = None
    except OSError as exc:
        raise OutputError(f"{p}: cannot write ({exc.strerror or exc})") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return p


def _sweep_dead_temps(p: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` siblings whose writer no longer runs (a SIGKILL mid-write cannot
    clean up after itself); a live writer's temp file is left alone."""
    try:
        leftovers = list(p.parent.glob(f".{glob.escape(p.name)}.*.tmp"))
    except OSError:
        return
    for tmp in leftovers:
        pid = tmp.name[len(p.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                tmp.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Strict JSON: a NaN or ±Inf (a loss on a model that outputs NaN) is written as null."""
    return write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON null)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return write_bytes(path, buf.getvalue())


def write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue())


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array of an ``.npy`` file, never unpickled; defects are ValueErrors as in `read_npz`."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise _plain_arrays_only(exc, "an .npy", "numpy.save") from exc
    except MemoryError as exc:
        raise ValueError(f"its array is larger than this machine's memory ({exc})") from exc


def _plain_arrays_only(exc: ValueError, what: str, writer: str) -> ValueError:
    """numpy's refusal of a pickle suggests allow_pickle: Kelvin never unpickles a file, so say that."""
    if "pickle" not in str(exc):
        return exc
    return ValueError(f"it holds pickled Python objects, or is not {what} at all; Kelvin reads plain arrays "
                      f"only ({writer})")


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read now and never unpickled.

    A hostile or damaged file raises ValueError saying what is wrong (a single ``.npy`` array
    instead of an archive, a member that is not an array, a broken archive, an array larger than
    memory), or OSError if it cannot be opened, so one ``except (OSError, ValueError)`` covers all.
    """
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive of named arrays")
        with z:
            out = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"a damaged archive: {exc}") from exc
    except ValueError as exc:
        raise _plain_arrays_only(exc, "an .npz", "numpy.savez") from exc
    except MemoryError as exc:
        raise ValueError(f"an array in it is larger than this machine's memory ({exc})") from exc
    for k, v in out.items():
        if not isinstance(v, np.ndarray):  # NpzFile hands back a non-.npy member as raw bytes
            raise ValueError(f"member {k!r} is not a NumPy array (.npy)")
    return out


@contextmanager
def dir_lock(outdir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside directory ``outdir`` (fails at once if another run holds it).

    The lock is an ``flock`` on that file, so a killed holder releases it; the file is removed
    when the holder is done (re-checked by inode, so two runs never both hold a lock).
    """
    out = Path(outdir)
    path = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"{out}: cannot create the lock file {path} ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"{out}: another kelvin run is writing this directory (lock {path}); "
                              "wait for it to finish, then retry") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed the file we locked: lock the new one
    try:
        yield out
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing, unreadable, not JSON or not an object."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return doc if isinstance(doc, dict) else None


def output_kind(directory: str | os.PathLike[str]) -> str | None:
    """Which Kelvin output a directory holds, from its ``kelvin.json``: the "kind" it records, or for
    directories written before kinds were recorded, what its keys show; None if it has no kelvin.json
    and is not an older characterization or fits directory (`_unrecorded_kind`)."""
    meta = Path(directory) / "kelvin.json"
    if not meta.is_file():
        return _unrecorded_kind(Path(directory))
    doc = read_json_object(meta)
    if doc is None:
        return "unreadable"
    if isinstance(doc.get("kind"), str):
        return doc["kind"]
    if "shapes" in doc:
        return "measurement"
    return "compile" if "target" in doc and "source" in doc else "unknown"


_CHARACTERIZATION_FORMAT = "kelvin-characterization"  # sim.characterize.store.FORMAT
_FIT_FORMAT = "kelvin-fit"  # sim.characterize.fit.FIT_FORMAT


def _unrecorded_kind(directory: Path) -> str | None:
    """The kind of a directory ``kelvin characterize`` or ``kelvin fit`` wrote before they recorded a
    kelvin.json, known by its content so it can still be re-run into: "characterization" if its
    entries are all folders and one holds a characterization manifest (``<kind>/manifest.json``),
    "fits" if they are all ``kelvin-fit`` JSON files (``models/fits``); else None. Hidden entries (a
    killed write's temp file) do not count, and anything else (a user's notes) makes it None."""
    try:
        entries = [e for e in directory.iterdir() if not e.name.startswith(".")]
        if not entries:
            return None
        if all(e.is_dir() for e in entries):
            found = any(_json_format(e / "manifest.json") == _CHARACTERIZATION_FORMAT for e in entries)
            return "characterization" if found else None
        if all(e.suffix == ".json" and e.is_file() and _json_format(e) == _FIT_FORMAT for e in entries):
            return "fits"
    except OSError:
        pass
    return None


def _json_format(path: Path) -> Any:
    """The ``format`` field of a JSON object file, or None if it is not one."""
    doc = read_json_object(path)
    return None if doc is None else doc.get("format")


def check_output(path: str | os.PathLike[str], *, directory: bool, kind: str | None = None) -> Path:
    """Raise OutputError now if ``path`` could not take a result later (a long run checks first).

    A file must not be a directory, nor land in a Kelvin output directory (`check_not_in_output_dir`),
    and its parent must be creatable and writable. A directory (`staged_dir`) must be a directory if it
    exists, and a non-empty one must hold ``kelvin.json`` of the same ``kind`` (compile, measurement,
    measured_chip, demo, characterization, fits), so ``-o .`` can never replace a user's files, nor one
    Kelvin output (a lab's CSV measurement) another. Returns the path, a symlinked directory resolved.
    """
    out = Path(path)
    try:
        out.exists()  # stat: a name too long, or a parent that is a file, fails here
    except OSError as exc:
        raise OutputError(f"{out}: not a usable output path ({exc.strerror or exc})") from exc
    if directory and out.is_symlink():
        out = out.resolve()
    if directory and out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; choose another output directory")
    if not directory and out.is_dir():
        raise OutputError(f"{out}: is a directory; choose a file name")
    if not directory:
        check_not_in_output_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create output directory ({exc.strerror or exc})") from exc
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: cannot write in its parent directory {out.parent}")
    if directory and out.is_dir() and any(out.iterdir()):
        found = output_kind(out)
        if found is None:
            raise OutputError(f"{out}: exists, is not empty and was not written by kelvin (no kelvin.json); "
                              "choose a new or empty output directory")
        if kind is not None and found != kind:
            raise OutputError(f"{out}: holds a Kelvin {found} output, not a {kind} one; choose another output "
                              "directory (writing there would replace or mix into that output)")
    return out


_NOT_A_KIND = frozenset({"unknown", "unreadable"})  # a kelvin.json that names no output: not judged here


def check_not_in_output_dir(path: str | os.PathLike[str]) -> None:
    """Raise OutputError if the file ``path`` would be written into a Kelvin output directory (a compile's
    OUTDIR, a CSV measurement, fits; `output_kind` of its parent).

    Such a directory holds one output's files only: a stray result in it is carried into the next run's
    directory (`staged_dir` keeps what it did not write), mixing two outputs. The reports Kelvin writes
    into a compile directory on purpose (`record_derived`) do not come through here."""
    out = Path(path)
    kind = output_kind(out.parent)
    if kind is not None and kind not in _NOT_A_KIND:
        raise OutputError(f"{out}: {out.parent} is a Kelvin {kind} directory, which holds only that output's "
                          f"files; write {out.name} elsewhere")


@contextmanager
def staged_dir(outdir: str | os.PathLike[str], products: frozenset[str] = frozenset(),
               kind: str | None = None) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``outdir`` to fill; on success it replaces ``outdir`` whole.

    On an error (or a kill) ``outdir`` keeps every file of the previous run, and the next run
    sweeps the leftover sibling. Entries of an earlier ``outdir`` that are not in ``products``
    (a user's notes) are carried over as hard links, except files derived from its old contents
    (a validate report, `record_derived`). An existing non-empty directory
    with no ``kelvin.json`` is refused, so ``-o .`` can never replace a user's files.
    """
    out = check_output(outdir, directory=True, kind=kind)
    with dir_lock(out):
        for stale in out.parent.glob(f".{out.name}.build-*"):  # a killed run's half-built sibling
            shutil.rmtree(stale, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
        try:
            yield stage
            try:
                if out.is_dir():
                    _carry_over(out, stage, products)
                os.chmod(stage, 0o777 & ~_umask())
                _swap(stage, out)
            except OSError as exc:
                raise OutputError(f"{out}: cannot write ({exc.strerror or exc})") from exc
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # the old directory, after a swap


def record_derived(directory: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Note in ``directory``'s kelvin.json that ``path``, a file inside it, was derived from its
    contents (a validate report): the next run that replaces the directory drops it instead of
    carrying a report about the old netlist into the new one."""
    out, target = Path(directory).resolve(), Path(path).resolve()
    meta = out / "kelvin.json"
    if target.parent != out or not meta.is_file():
        return
    with dir_lock(out):
        doc = read_json_object(meta)
        if doc is not None:
            doc["derived"] = sorted(derived_files(out) | {target.name})
            write_json(meta, doc)


def derived_files(directory: str | os.PathLike[str]) -> set[str]:
    """Names of the files in ``directory`` derived from its contents (`record_derived`)."""
    doc = read_json_object(Path(directory) / "kelvin.json") or {}
    derived = doc.get("derived")
    return {str(name) for name in derived} if isinstance(derived, list) else set()


def _carry_over(old: Path, new: Path, products: frozenset[str]) -> None:
    """Hard-link ``old``'s entries that this run did not write into ``new``: a user's notes, but not
    files derived from the old contents (`record_derived`) nor a killed write's ``.tmp``."""
    skip = products | derived_files(old)
    for entry in old.iterdir():
        if entry.name in skip or (new / entry.name).exists() or entry.name.endswith(".tmp"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, new / entry.name)


def _link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _swap(stage: Path, out: Path) -> None:
    """Put ``stage`` at ``out`` in one step; the old ``out`` (if any) ends up at ``stage``."""
    if not out.exists():
        os.rename(stage, out)
        return
    if _exchange(stage, out):
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))  # no RENAME_EXCHANGE here
    os.rename(out, old / "old")
    os.rename(stage, out)
    os.rename(old, stage)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
