"""The device check: everything issue 14 asks a GPU to show, in one run, into benchmarks/results/.

    python benchmarks/device_check.py --device cuda          # what device_check.sh runs
    python benchmarks/device_check.py --dry-run              # CPU, tiny sizes: the test suite runs this

Sections (each written to the JSON as soon as it is done, so a timeout keeps what ran):
  accounting  kernels per call and bytes per output element, fused and torch path (meta tensors)
  agreement   every op alone and the seed pipeline: device (torch path and fused) vs CPU outputs
  syncs       host syncs per call (torch.cuda.set_sync_debug_mode), uint8 and float input
  timings     fused, torch path, Kornia eager and torch.compile'd at 32^2 and 224^2, batch 64 and 256,
              many pipelined calls between CUDA events, % of the 1 GiB copy bandwidth bound
No network; a peer that cannot be imported or compiled is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import augkit as ak  # noqa: E402
from augkit.backends import fused as fz  # noqa: E402
from augkit.bench import cuda as C  # noqa: E402
from augkit.bench.opcount import accounting_table  # noqa: E402
from augkit.images import sample_batch  # noqa: E402
from augkit.ops import OPS  # noqa: E402

AGREE_TOL = 2e-4  # device vs CPU (libm and reduction order differ); Normalize scales it by 1 / std
FULL = {"sizes": (32, 224), "batches": (64, 256), "calls": 50, "warmup": 10, "agree": (8, 3, 96, 112)}
DRY = {"sizes": (16,), "batches": (4,), "calls": 2, "warmup": 1, "agree": (2, 3, 12, 14)}


def one_op_pipelines() -> dict[str, list[ak.Op]]:
    """Every op alone (p = 1 where it has a p) plus the seed pipeline; ops that need arguments
    (containers, sizes) are skipped here and covered by the pipelines that use them.

    Rot90 turns a non-square image to another size per sample, so a Resize follows it.
    """
    out = {}
    for name, cls in OPS.items():
        op = None
        for kwargs in ({"p": 1.0}, {}):
            try:
                op = cls(**kwargs)
                break
            except (TypeError, ValueError):
                continue
        if op is not None:
            out[name] = [op, ak.Resize((32, 32))] if isinstance(op, ak.Rot90) else [op]
    out["seed pipeline"] = ak.default_pipeline().ops
    return out


def agreement(device: torch.device, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    rows = []
    for name, ops in one_op_pipelines().items():
        pipe = ak.Pipeline(ops, seed=0, fused="never")
        p = pipe.sample(shape[0])
        ref = pipe(x, params=p)
        tol = AGREE_TOL / min(getattr(ops[-1], "std", (1.0,))) if isinstance(ops[-1], ak.Normalize) else AGREE_TOL
        row: dict[str, Any] = {"pipeline": name, "tolerance": tol}
        for path in ("never", "auto"):
            y = ak.Pipeline(ops, seed=0, fused=path)(x.to(device), params=p.to(device)).cpu()
            key = "torch_path" if path == "never" else "fused_auto"
            row[key + "_max_abs"] = float((y - ref).abs().max())
        row["ok"] = all(row[k] <= tol for k in ("torch_path_max_abs", "fused_auto_max_abs"))
        rows.append(row)
    return rows


def syncs(device: torch.device, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """Host syncs per steady-state call, counted by CUDA's sync debug mode (CUDA only)."""
    if device.type != "cuda":
        return [{"note": f"sync debug mode needs CUDA; device is {device}"}]
    rows = []
    x8 = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    for label, x, kw in (("uint8", x8, {}), ("float, check='first'", x8.float() / 255, {}),
                         ("float, check='always'", x8.float() / 255, {"check": "always"})):
        for fused in ("auto", "never"):
            pipe = ak.Pipeline(ak.default_pipeline().ops, seed=0, fused=fused, **kw)
            pipe(x)  # first call: caches, the first float check
            params = pipe.sample(shape[0], device)
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    pipe(x, params=params)
                    pipe(x)  # drawing params on the device too
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            n = sum("synchroniz" in str(w.message) for w in caught)
            rows.append({"input": label, "fused": fused, "syncs_per_2_calls": n,
                         "messages": sorted({str(w.message)[:120] for w in caught})[:5]})
    return rows


def timings(device: torch.device, cfg: dict, peers: tuple[str, ...], log: Any) -> dict[str, Any]:
    bw = C.copy_bandwidth(device, nbytes=C.COPY_BYTES if device.type == "cuda" else 1 << 24)
    rows = []
    for size in cfg["sizes"]:
        for b in cfg["batches"]:
            log(f"timings {size}x{size} batch {b}")
            x = sample_batch(size, b).to(device)
            rows += C.accelerator_cases(ak.default_pipeline(), x, peers, calls=cfg["calls"], warmup=cfg["warmup"],
                                        bandwidth=bw, log=log)
    return {"copy_gb_s": bw / 1e9, "rows": rows}


def to_markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [f"# augkit device check: {m['device']} ({m.get('gpu') or m['cpu']})", "",
           f"{m['date']}, torch {m['torch']}, triton {m['triton']}, fused path available: {m['fused_available']}", ""]
    if "accounting" in r:
        out += ["## Kernels and bytes per call (seed pipeline, 3x224x224, counted on meta tensors)", "",
                "| path | batch | kernels per call (replayed params) | bytes per output element | + ops to draw params |",
                "|---|---:|---:|---:|---:|"]
        out += [f"| {a['path']} | {a['shape'][0]} | {a['kernels']} | {a['bytes_per_element']:.1f} | {a['sample_ops']} |"
                for a in r["accounting"]]
        out.append("")
    if "agreement" in r:
        out += ["## Device vs CPU outputs", "", "| pipeline | torch path max abs | fused (auto) max abs | ok |",
                "|---|---:|---:|---|"]
        out += [f"| {a['pipeline']} | {a['torch_path_max_abs']:.2e} | {a['fused_auto_max_abs']:.2e} | {a['ok']} |"
                for a in r["agreement"]]
        out.append("")
    if "syncs" in r:
        out += ["## Host syncs (two steady-state calls: replayed params, then drawn params)", ""]
        for s in r["syncs"]:
            out.append(f"- {s}" if "note" in s else f"- {s['input']}, fused={s['fused']}: {s['syncs_per_2_calls']}")
        out.append("")
    if "timings" in r:
        t = r["timings"]
        out += [f"## Timings (copy bandwidth {t['copy_gb_s']:.1f} GB/s)", "",
                "| size | batch | case | img/s | ms/call | % of bound | augkit / this |", "|---:|---:|---|---:|---:|---:|---:|"]
        for row in t["rows"]:
            if row["status"] != "ok":
                out.append(f"| {row['size']} | {row['batch_size']} | {row['label']} | skipped: {row['note']} | | | |")
                continue
            pct = f"{row['pct_bound']:.0f}%" if row.get("pct_bound") is not None else ""
            ratio = f"{row['augkit_ratio']:.2f}" if row.get("augkit_ratio") is not None else ""
            out.append(f"| {row['size']} | {row['batch_size']} | {row['label']} | {row['img_s']:,.0f} | "
                       f"{row['ms_per_call']:.3f} | {pct} | {ratio} |")
        out.append("")
    out.append(f"Total {r.get('seconds', 0):.0f} s.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, no torch.compile peer")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="folder for JSON + Markdown")
    ap.add_argument("--sections", default="accounting,agreement,syncs,timings")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.device = "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("device_check: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    cfg = DRY if args.dry_run else FULL
    peers = ("kornia",) if args.dry_run or device.type == "cpu" else ("kornia", "kornia-compiled")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"device-check-{'dry' if args.dry_run else device.type}"
    try:
        import triton

        triton_version = triton.__version__
    except Exception:
        triton_version = None
    r: dict[str, Any] = {"machine": {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": str(device), "torch": torch.__version__,
        "triton": triton_version, "fused_available": fz.available(), "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}}
    t0 = time.time()

    def log(s: str) -> None:
        print(s, flush=True)

    def save() -> None:
        r["seconds"] = time.time() - t0
        stem.with_suffix(".json").write_text(json.dumps(r, indent=1, default=str))
        stem.with_suffix(".md").write_text(to_markdown(r))

    sections = args.sections.split(",")
    if "accounting" in sections:
        log("accounting (meta tensors)")
        r["accounting"] = accounting_table(ak.default_pipeline(), batches=cfg["batches"], size=max(cfg["sizes"]))
        save()
    if "agreement" in sections:
        log("agreement: device vs CPU for every op")
        r["agreement"] = agreement(device, cfg["agree"])
        save()
    if "syncs" in sections:
        log("syncs per call")
        r["syncs"] = syncs(device, (cfg["batches"][0], 3, max(cfg["sizes"]), max(cfg["sizes"])))
        save()
    if "timings" in sections:
        r["timings"] = timings(device, cfg, peers, log)
        save()
    log(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')} in {time.time() - t0:.0f} s")
    bad = [a["pipeline"] for a in r.get("agreement", []) if not a["ok"]]
    if bad:
        log(f"DISAGREE: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
