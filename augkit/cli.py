"""The ``augkit`` command: parse, call one library function, print."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    r = run_demo(out=args.out, size=args.size, batch_size=args.batch_size, seed=args.seed)
    print(f"preview grid (originals, then 5 augmented copies each): {r['preview']}")
    print(
        f"throughput on {r['device']}, batch {r['batch_size']} of {r['size']}x{r['size']} uint8: "
        f"augkit {r['augkit_img_s']:,.0f} img/s, Kornia AugmentationSequential {r['kornia_img_s']:,.0f} img/s "
        f"({r['augkit_img_s'] / r['kornia_img_s']:.1f}x)"
    )
    return 0


def _csv(kind: type, name: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list, got {text!r}") from None

    return parse


def _bench(args: argparse.Namespace) -> int:
    from .bench import bench

    r = bench(sizes=args.sizes, batch_size=args.batch_size, device=args.device, peers=args.peers, repeats=args.repeats,
              warmup=args.warmup, json=args.json, markdown=args.markdown, plot=args.plot, quick=args.quick,
              log=lambda s: print(s, flush=True))
    from .bench import format_table

    print()
    print(format_table(r))
    for path in r["written"]:
        print(f"wrote {path}")
    return 0


def _expand(args: argparse.Namespace) -> int:
    from .data.expand import ExpandError, expand

    try:
        r = expand(
            args.src, args.dst, copies=args.copies, pipeline=args.pipeline, seed=args.seed,
            include_original=args.include_original, shard=args.shard, workers=args.workers,
            batch_size=args.batch_size, device=args.device, format=args.format, quality=args.quality,
            on_error=args.on_error, overwrite=args.overwrite, progress=not args.quiet, annotations=args.annotations,
        )  # fmt: skip
    except (ValueError, TypeError, OSError, RuntimeError, ExpandError) as e:
        print(f"augkit expand: error: {e}", file=sys.stderr)
        return 1
    print(
        f"augkit expand: shard {r.shard[0]}/{r.shard[1]}: {r.sources} images, wrote {r.written} outputs, "
        f"{r.skipped} already done, {len(r.errors)} unreadable, in {r.seconds:.1f} s "
        f"({r.images_per_s:,.1f} images/s on {r.device})"
    )
    for source, message in r.errors:
        print(f"  skipped {source}: {message}")
    manifest = "manifest.jsonl" if r.merged else f"manifest.part-{r.shard[0]}-of-{r.shard[1]}.jsonl (merged when every shard is done)"
    print(f"  manifest: {r.dst}/{manifest}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from .train.study import run_study

    path = run_study(
        out=args.out, fraction=args.fraction, seeds=args.seeds, quick=args.quick, epochs=args.epochs,
        device=args.device,
    )
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augkit", description="Fast batched data augmentation.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="augment bundled photographs, write a preview grid, time augkit vs Kornia")
    p.add_argument("--out", default="augkit-demo.png", help="where to write the preview PNG")
    p.add_argument("--size", type=int, default=224, help="image side for the throughput line")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)

    p = sub.add_parser("bench", help="time augkit side by side with Kornia, Albumentations, plain torch (docs/benchmarks.md)")
    p.add_argument("--sizes", type=_csv(int, "--sizes"), default=(32, 224), help="image sides, e.g. 32,224")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--peers", type=_csv(str, "--peers"), default=("kornia", "albumentations", "torch", "torchvision"),
                   help="subset of kornia,albumentations,torch,torchvision")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per case, median reported (default 10, quick 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 3, quick 1)")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    p.add_argument("--markdown", default=None, help="write the tables as markdown here")
    p.add_argument("--plot", default=None, help="write a log-scale bar chart (PNG) here")
    p.add_argument("--quick", action="store_true", help="fewer repeats and batches (a smoke run, < 60 s on 2 cores)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("expand", help="write augmented copies of an image folder (deterministic, resumable, sharded)")
    p.add_argument("src", help="folder of images, flat or in class subfolders")
    p.add_argument("dst", help="output folder (mirrors SRC's layout), outside SRC")
    p.add_argument("--copies", type=int, required=True, help="augmented copies per image (>= 1)")
    p.add_argument("--pipeline", default=None, help="pipeline YAML file (default: augkit.default_pipeline(seed))")
    p.add_argument("--seed", type=int, default=0, help="keys every copy (the pipeline file's own seed is not used)")
    p.add_argument("--include-original", action="store_true", help="also write each original as <stem>_orig.<ext>")
    p.add_argument("--shard", default="0/1", help="I/N: do images I, I+N, ... (0 <= I < N)")
    p.add_argument("--workers", type=int, default=None, help="decode/encode processes (0: none; default: min(8, CPUs))")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--format", default="png", choices=["png", "jpg", "webp"])
    p.add_argument("--quality", type=int, default=95, help="jpg/webp quality, 1..100")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"], help="what to do with unreadable images")
    p.add_argument("--overwrite", action="store_true", help="replace a DST made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--annotations", default=None, help="JSON Lines of masks/boxes/keypoints per source (docs/targets.md)")
    p.set_defaults(func=_expand)

    p = sub.add_parser("study", help="train small CNNs on digits with each remedy for overfitting; write a report")
    p.add_argument("--out", default="study", help="folder for report.md and plots")
    p.add_argument("--fraction", type=float, default=0.1, help="baseline training fraction, in (0, 1]")
    p.add_argument("--seeds", type=int, default=None, help="runs per arm (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke test: 8 epochs, 1 seed")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 200; 8 with --quick)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.set_defaults(func=_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
