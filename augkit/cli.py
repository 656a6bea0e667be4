"""The ``augkit`` command: parse, call one library function, print.

Conventions (every subcommand): ``--help`` shows a description and each flag's default;
``-q/--quiet`` prints only results and errors, ``-v/--verbose`` adds detail; an argument
error is one line on stderr and exit code 2; a failure while running is one line and exit
code 1; no tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_FAILED = 1  # the command ran and failed (unreadable input, disk full, ...)
EXIT_USAGE = 2  # the command line was wrong (argparse's convention)


class UsageError(Exception):
    """A bad argument value found after parsing; reported as one line, exit code 2."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default (not for on/off switches or defaults computed later) and keeps line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        shown = not (d is None or d is False or d == argparse.SUPPRESS) and action.option_strings
        return f"{text} (default: {_show(action.default)})" if shown and "%(default)" not in text else text


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``augkit demo: error: ... (see augkit demo --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# argument types: each raises ArgumentTypeError, which argparse reports as one line ---------------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value:g}")
    return value


def _csv(kind: type, name: str, low: int | None = None, choices: Sequence[str] | None = None) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
        if low is not None and any(v < low for v in values):
            raise argparse.ArgumentTypeError(f"expected values >= {low}, got {text!r}")
        if choices is not None and any(v not in choices for v in values):
            bad = [v for v in values if v not in choices]
            raise argparse.ArgumentTypeError(f"expected values among {','.join(choices)}, got {','.join(bad)}")
        return values

    parse.__name__ = name
    return parse


def _say(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines go to stderr unless --quiet."""
    return None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))


# subcommands ----------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    r = run_demo(out=args.out, size=args.size, batch_size=args.batch_size, seed=args.seed)
    print(f"preview grid (originals, then 5 augmented copies each): {r['preview']}")
    print(
        f"throughput on {r['device']}, batch {r['batch_size']} of {r['size']}x{r['size']} uint8: "
        f"augkit {r['augkit_img_s']:,.0f} img/s, Kornia AugmentationSequential {r['kornia_img_s']:,.0f} img/s "
        f"({r['augkit_img_s'] / r['kornia_img_s']:.1f}x)"
    )
    if args.verbose:
        from .pipeline import default_pipeline

        print(f"pipeline: {default_pipeline(args.seed)!r}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import importlib.util

    if args.plot and importlib.util.find_spec("matplotlib") is None:  # say so before minutes of timing
        raise ImportError("--plot needs matplotlib: pip install 'augkit[bench]'")
    from .bench import bench, format_table

    r = bench(sizes=args.sizes, batch_size=args.batch_size, device=args.device, peers=args.peers, repeats=args.repeats,
              warmup=args.warmup, json=args.json, markdown=args.markdown, plot=args.plot, quick=args.quick,
              log=_say(args))
    if not args.quiet:
        print()
    print(format_table(r))
    for path in r["written"]:
        print(f"wrote {path}")
    if args.verbose:
        print(f"config: {r['config']}")
    return 0


def _expand(args: argparse.Namespace) -> int:
    from .data.expand import ExpandError, expand

    ray_options = {"ray_address": args.ray_address, "num_cpus": args.num_cpus, "num_gpus": args.num_gpus}
    if args.engine == "local" and any(v is not None for v in ray_options.values()):
        given = ", ".join(f"--{k.replace('_', '-')}" for k, v in ray_options.items() if v is not None)
        raise UsageError(f"{given} only apply with --engine ray")
    run: Callable[..., Any] = expand
    ray_options = {k: v for k, v in ray_options.items() if v is not None}
    try:
        if args.engine == "ray":  # the same job on Ray Data
            from .data.expand_ray import expand_ray as run
        r = run(
            args.src, args.dst, copies=args.copies, pipeline=args.pipeline, seed=args.seed,
            include_original=args.include_original, shard=args.shard, workers=args.workers,
            batch_size=args.batch_size, device=args.device, format=args.format, quality=args.quality,
            on_error=args.on_error, overwrite=args.overwrite, progress=not args.quiet,
            max_pixels=args.max_pixels, prune=args.prune, annotations=args.annotations, **ray_options,
        )  # fmt: skip
    except (ValueError, TypeError, OSError, RuntimeError, ExpandError) as e:
        print(f"augkit expand: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    first, *rest = r.lines()
    print(f"augkit expand: {first}")
    for line in rest:
        print(line)
    manifest = "manifest.jsonl" if r.merged else f"manifest.part-{r.shard[0]}-of-{r.shard[1]}.jsonl (merged when every shard is done)"
    print(f"  manifest: {r.dst}/{manifest}")
    if args.verbose:
        print(f"  pipeline: {args.pipeline or 'augkit.default_pipeline(seed)'}, seed {args.seed}, format {args.format}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from .train.study import run_study

    path = run_study(
        out=args.out, fraction=args.fraction, seeds=args.seeds, quick=args.quick, epochs=args.epochs,
        device=args.device, log=_say(args),
    )  # fmt: skip
    print(f"report: {path}")
    if args.verbose:
        for p in sorted(path.parent.glob("*.png")):
            print(f"plot: {p}")
    if args.quick or args.seeds == 1:
        print("(a smoke test: one seed supports no findings; `augkit study` without --quick measures)")
    return 0


# the parser -----------------------------------------------------------------------------------
DEMO_DESCRIPTION = """\
Augment the four photographs that ship with augkit, write a preview grid (each original, then
five augmented copies), and time augkit against Kornia's AugmentationSequential on the same
pipeline (augkit.default_pipeline) and the same uint8 batch."""

BENCH_DESCRIPTION = """\
Time augkit side by side with Kornia, Albumentations (one process and DataLoader workers),
plain torch and torchvision in one run, after checking every peer's output; report images/s,
ratios and the share of a uint8->float32 copy bound. Method and recorded results:
docs/benchmarks.md."""

EXPAND_DESCRIPTION = """\
Write COPIES augmented copies of every image under SRC into DST, mirroring SRC's layout.
Copy k of image i is the same whatever the batch size, worker count or shard split; a re-run
resumes where a crash stopped; DST/manifest.jsonl records the params of every file.
Details: docs/expand.md."""

STUDY_DESCRIPTION = """\
Train small CNNs on scikit-learn's digits with each remedy for overfitting (augmentation,
more data, offline copies, a smaller model, dropout, L1/L2, early stopping, standardized
inputs) and write report.md with plots. Needs the study extra: pip install 'augkit[study]'."""


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="print only the results and errors (no progress)")
    g.add_argument("-v", "--verbose", action="store_true", help="print more detail (pipeline, configuration)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="augkit", description="augkit: fast batched data augmentation on the GPU, "
                     "dependable per-image fallback on the CPU.", formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"augkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench,expand,study}", parser_class=_Parser)

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description, formatter_class=_Formatter)
        _add_output_flags(p)
        return p

    p = add("demo", "augment bundled photographs, write a preview grid, time augkit vs Kornia", DEMO_DESCRIPTION)
    p.add_argument("--out", default="augkit-demo.png", help="where to write the preview PNG")
    p.add_argument("--size", type=_int_at_least(8), default=224, help="image side (pixels) for the throughput line")
    p.add_argument("--batch-size", type=_int_at_least(1), default=64, help="images per timed batch")
    p.add_argument("--seed", type=int, default=0, help="pipeline seed")
    p.set_defaults(func=_demo)

    p = add("bench", "time augkit side by side with Kornia, Albumentations, plain torch (docs/benchmarks.md)",
            BENCH_DESCRIPTION)
    p.add_argument("--sizes", type=_csv(int, "--sizes", low=8), default=(32, 224), help="image sides, e.g. 32,224")
    p.add_argument("--batch-size", type=_int_at_least(1), default=64, help="images per batch")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the batched cases run")
    from .bench import PEERS

    p.add_argument("--peers", type=_csv(str, "--peers", choices=PEERS), default=PEERS, help=f"subset of {','.join(PEERS)}")
    p.add_argument("--repeats", type=_int_at_least(1), default=None, help="timed calls per case, median reported (default: 10; 5 with --quick)")
    p.add_argument("--warmup", type=_int_at_least(0), default=None, help="untimed calls first (default: 3; 1 with --quick)")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    p.add_argument("--markdown", default=None, help="write the tables as markdown here")
    p.add_argument("--plot", default=None, help="write a log-scale bar chart (PNG) here; needs augkit[bench]")
    p.add_argument("--quick", action="store_true", help="fewer repeats and batches (a smoke run, < 60 s on 2 cores)")
    p.set_defaults(func=_bench)

    p = add("expand", "write augmented copies of an image folder (deterministic, resumable, sharded)", EXPAND_DESCRIPTION)
    p.add_argument("src", help="folder of images, flat or in class subfolders")
    p.add_argument("dst", help="output folder (mirrors SRC's layout), outside SRC")
    p.add_argument("--copies", type=int, required=True, help="augmented copies per image (>= 1)")
    p.add_argument("--pipeline", default=None, help="pipeline YAML file (default: augkit.default_pipeline(seed))")
    p.add_argument("--seed", type=int, default=0, help="keys every copy (the pipeline file's own seed is not used)")
    p.add_argument("--include-original", action="store_true", help="also write each original as <stem>_orig.<ext>")
    p.add_argument("--shard", default="0/1", help="I/N: do images I, I+N, ... (0 <= I < N)")
    p.add_argument("--workers", type=int, default=None, help="decode/encode processes (0: none; default: min(8, CPUs))")
    p.add_argument("--batch-size", type=int, default=32, help="images augmented per batch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--format", default="keep", choices=["keep", "png", "jpg", "webp"], help="keep: each source's own format (other than png/jpg/webp -> png)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality, 1..100 (default 95)")
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="larger images are unreadable (--on-error applies)")
    p.add_argument("--prune", action="store_true", help="remove outputs of sources no longer in SRC")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"], help="what to do with unreadable images")
    p.add_argument("--overwrite", action="store_true", help="replace a DST made with other settings")
    p.add_argument("--annotations", default=None, help="JSON Lines of masks/boxes/keypoints per source (docs/targets.md)")
    p.add_argument("--engine", default="local", choices=["local", "ray"], help="local processes, or Ray Data (docs/scale.md)")
    p.add_argument("--ray-address", default=None, help="ray: auto | HOST:PORT | ray://HOST:PORT (default: start a local Ray)")
    p.add_argument("--num-cpus", type=float, default=None, help="ray: CPUs per actor (default: 1); --workers sets the actors")
    p.add_argument("--num-gpus", type=float, default=None, help="ray: GPUs per actor (default: 0, CPU actors)")
    p.set_defaults(func=_expand)

    p = add("study", "train small CNNs on digits with each remedy for overfitting; write a report", STUDY_DESCRIPTION)
    p.add_argument("--out", default="study", help="folder for report.md and plots")
    p.add_argument("--fraction", type=_fraction, default=0.1, help="baseline training fraction, in (0, 1]")
    p.add_argument("--seeds", type=_int_at_least(1), default=None, help="runs per arm (default: 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke test, no findings: 8 epochs, 1 seed")
    p.add_argument("--epochs", type=_int_at_least(1), default=None, help="epochs per run (default: 200; 8 with --quick)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.set_defaults(func=_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with one line on a bad command line
    prog = f"augkit {args.command}"
    try:
        return int(args.func(args))
    except (ValueError, TypeError, UsageError) as e:  # a value the library rejected: still an argument error
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as e:  # an optional dependency (an extra) is missing
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, RuntimeError) as e:
        print(f"{prog}: error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: Any) -> str:
    return " ".join(str(e).split())


if __name__ == "__main__":
    sys.exit(main())
