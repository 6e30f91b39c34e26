"""Regenerate models/examples/digits_mlp.onnx and digits_test.npz (deterministic: same bytes).

Usage: PYTHONPATH=. python scripts/make_examples.py [--seed 0] [--out models/examples]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.zoo_train import write_digits_examples  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Train the digits MLP with the given seed and write the model and its test split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "examples")
    args = parser.parse_args(argv)
    accuracy = write_digits_examples(args.out, args.seed)
    print(f"wrote {args.out}/digits_mlp.onnx and digits_test.npz (seed {args.seed}, "
          f"test accuracy {accuracy:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
