"""The ``kelvin`` command line: compile, run and demo (more subcommands arrive with later stages).

Errors Kelvin raises on purpose print as one line on stderr with a non-zero exit; ``-v``
shows the traceback and debug logging.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from circuits.errors import KelvinError
from circuits.targets import TARGETS

log = logging.getLogger("kelvin")

EXIT_ERROR = 1
EXIT_INTERNAL = 3


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="kelvin",
        description="Compile ONNX models into analog circuits, simulate and validate them.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    targets = sorted(TARGETS)

    p = sub.add_parser("compile", parents=[common], help="lower an ONNX model to analog primitives",
                       description="Import MODEL, lower it to the target's primitives and write "
                                   "OUTDIR/graph.json; print a summary of primitives and devices.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("-o", "--outdir", required=True, help="output directory (created if missing)")
    p.add_argument("--target", choices=targets, default="opamp", help="hardware target (default: opamp)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", parents=[common], help="execute a model on inputs",
                       description="Run MODEL on the inputs in X (.npy, .npz keyed by input name, "
                                   "or .csv with one sample per row) with ideal devices.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--input", "-i", required=True, dest="input", help="input file (.npy/.npz/.csv)")
    p.add_argument("-o", "--output", help="write outputs here (.npy for one output, .npz for several)")
    p.add_argument("--target", choices=targets, default="opamp", help="hardware target (default: opamp)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per engine call (default: 256)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", parents=[common], help="compile and run the bundled digits classifier",
                       description="Compile the bundled 64-16-10 digits MLP to every target, run the "
                                   "held-out digits through each, and report accuracy and hardware.")
    p.add_argument("-o", "--outdir", default="out/demo", help="output directory (default: out/demo)")
    p.set_defaults(func=cmd_demo)
    return parser


def cmd_compile(args: argparse.Namespace) -> int:
    from sim.commands import compile_to_dir, format_summary

    doc = compile_to_dir(args.model, args.outdir, args.target, progress=not args.quiet)
    print(format_summary(doc))
    print(f"wrote {doc['_path']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sim.commands import run_model_file

    outputs, path = run_model_file(args.model, args.input, args.output, args.target,
                                   batch_size=args.batch_size, progress=not args.quiet)
    for name, value in outputs.items():
        print(f"{name}: shape {list(value.shape)} {value.dtype}")
        if path is None:
            print(value)
    if path is not None:
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sim.demo import run_demo

    print(run_demo(args.outdir, progress=not args.quiet))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KelvinError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"kelvin {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"kelvin {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless -v
        if args.verbose:
            traceback.print_exc()
        print(f"kelvin {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(run with -v for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
