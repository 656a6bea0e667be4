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

    p = sub.add_parser("study", help="train small CNNs on digits with each remedy for overfitting; write a report")
    p.add_argument("--out", default="study", help="folder for report.md and plots")
    p.add_argument("--fraction", type=float, default=0.1, help="baseline training fraction, in (0, 1]")
    p.add_argument("--seeds", type=int, default=None, help="runs per arm (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke test: 8 epochs, 1 seed")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 100; 8 with --quick)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.set_defaults(func=_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
