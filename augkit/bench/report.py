"""Turn ``run_bench`` results into a terminal table, markdown, JSON and a log-scale bar chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["format_table", "to_markdown", "save_json", "save_plot", "save_outputs"]

GROUP_TITLES = {
    "batched": "Batched pipeline vs peers (uint8 batch in, float32 [0, 1] batch out)",
    "overhead": "Albumentations-backend overhead (one HWC uint8 image at a time)",
    "loader": "End-to-end loader (dataset of HWC uint8 images -> float32 batches)",
    "color": "Photometric pipeline: ColorJitter + GaussianBlur(p=0.5) + Erasing(p=0.5)",
    "recipe": "RandomResizedCrop + flip + contrast + noise from mixed-size uint8 photos",
    "targets": "Carrying targets (detection workload; x = time over the image-only time)",
}
BASE_NAME = {"batched": "augkit", "overhead": "pipe(img)", "loader": "augkit.loader", "recipe": "augkit", "targets": "image-only", "color": "augkit"}
BOUND_NAME = "uint8→float32 copy, reused buffer (torch.empty(float32).copy_(uint8), same shape as the batch)"
BOUND_NOTE = ("A floor on any uint8 -> float32 pipeline: 5 bytes moved per pixel and channel. When one pass fits in the "
              "CPU's last-level cache (small images or batches), the copy runs at cache bandwidth, not DRAM bandwidth, "
              "and '% bound' reads low.")


def _fmt(v: float | None, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _machine_line(m: dict) -> str:
    v = m["versions"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU used"
    libs = ", ".join(f"{k} {v[k]}" for k in ("torch", "kornia", "albumentations", "opencv", "torchvision") if v.get(k))
    load = m.get("load_avg_1m")
    load_s = f", load avg {load:.2f} -> {m.get('load_avg_1m_end', 0):.2f}" if load is not None else ""
    return f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads){gpu}; {libs}; {m['date']}{load_s}"


def _rows_by_group(result: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in result["rows"]:
        out.setdefault(r["group"], []).append(r)
    return out


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table per group and the bound per size (the targets live in docs/benchmarks.md)."""
    lines = [f"augkit bench on {result['config']['device']}: {_machine_line(result['machine'])}"]
    bound = {b["size"]: b for b in result["bounds"]}
    for group, rows in _rows_by_group(result).items():
        lines += ["", GROUP_TITLES[group], f"{'size':>5} {'case':<52} {'img/s':>12} {BASE_NAME[group] + ' x':>14} {'% bound':>8}  note"]
        for r in rows:
            status = "" if r["status"] == "ok" else f"[{r['status']}] "
            lines.append(f"{r['size']:>5} {r['label']:<52} {_fmt(r['img_s'], ',.0f'):>12} {_fmt(r['augkit_ratio'], '.2f'):>14} "
                         f"{_fmt(r['pct_bound'], '.1f'):>8}  {status}{r['note']}")
    lines += ["", f"Bound: {BOUND_NAME}", f"  {BOUND_NOTE}"]
    cache = result["machine"].get("cache_bytes")
    if cache:
        lines.append(f"  Last-level cache here: {cache / 1e6:.1f} MB.")
    for s, b in bound.items():
        lines.append(f"{s:>5} {b['img_s']:>14,.0f} img/s  {b['gb_s']:.2f} GB/s  (batch {b['batch_size']}, "
                     f"{_pass_mb(b):.2f} MB per pass{_where(b, cache)})")
    return "\n".join(lines)


def _where(b: dict, cache: int | None) -> str:
    if not cache:
        return ""
    return ": cache-resident" if _pass_mb(b) * 1e6 <= cache else ": exceeds the cache (DRAM)"


def _pass_mb(b: dict) -> float:
    """Bytes one bound pass moves: uint8 read + float32 write of a (B, 3, S, S) batch, in MB."""
    return b["batch_size"] * 3 * b["size"] ** 2 * 5 / 1e6


def _target_line(t: dict) -> str:
    head = f"  {t['device']}, batch {t['batch_size']}, {t['size']}x{t['size']}: {t['what']} >= {t['need']:g}"
    if t["value"] is None:
        return f"{head}: {t.get('note', 'not measured')}"
    return f"{head}: {t['value']:.2f} -> {'met' if t['met'] else 'MISSED'}"


def to_markdown(result: dict[str, Any]) -> str:
    """``format_table``'s content as markdown tables, plus the targets (for docs/benchmarks.md)."""
    out = [f"Measured on: {_machine_line(result['machine'])}.", "",
           f"Device `{result['config']['device']}`, batch {result['config']['batch_size']}, median of "
           f"{result['config']['repeats']} repeats after {result['config']['warmup']} warm-up calls"
           f"{' (--quick)' if result['config']['quick'] else ''}.", ""]
    for group, rows in _rows_by_group(result).items():
        out += [f"**{GROUP_TITLES[group]}**", "", f"| size | case | img/s | {BASE_NAME[group]} × | % of bound | note |",
                "|---:|---|---:|---:|---:|---|"]
        for r in rows:
            status = "" if r["status"] == "ok" else f"**{r['status']}**: "
            out.append(f"| {r['size']} | {r['label']} | {_fmt(r['img_s'], ',.0f')} | {_fmt(r['augkit_ratio'], '.2f')} | "
                       f"{_fmt(r['pct_bound'], '.1f')} | {status}{r['note']} |")
        out.append("")
    cache = result["machine"].get("cache_bytes")
    where = f" Last-level cache here: {cache / 1e6:.1f} MB." if cache else ""
    out += [f"**Bound: {BOUND_NAME}**", "", BOUND_NOTE + where, "", "| size | img/s | GB/s | MB per pass |",
            "|---:|---:|---:|---:|"]
    out += [f"| {b['size']} | {b['img_s']:,.0f} | {b['gb_s']:.2f} | {_pass_mb(b):.2f}{_where(b, cache)} |" for b in result["bounds"]]
    out += ["", "**Targets**", ""] + [f"-{_target_line(t)[1:]}" for t in result["targets"]]
    return "\n".join(out) + "\n"


def save_json(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def save_plot(result: dict[str, Any], path: str | Path) -> Path:
    """Log-scale grouped bars: one group per size, one bar per batched case, plus the bandwidth bound."""
    from ..train.plots import new_figure  # matplotlib's object API: no pyplot, no global backend change

    sizes = result["config"]["sizes"]
    rows = [r for r in result["rows"] if r["group"] == "batched" and r["status"] == "ok"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    labels = {r["case"]: r["label"] for r in rows}
    series = {c: [next((r["img_s"] for r in rows if r["case"] == c and r["size"] == s), 0.0) for s in sizes] for c in cases}
    series["bound"] = [next(b["img_s"] for b in result["bounds"] if b["size"] == s) for s in sizes]
    labels["bound"] = "bound: uint8→float32 copy, reused buffer"
    width = 0.8 / len(series)
    fig = new_figure(figsize=(max(6.0, 2.2 * len(sizes) + 3), 4.5))
    ax = fig.subplots()
    for k, (case, vals) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(sizes))]
        bars = ax.bar(xs, vals, width, label=labels[case], hatch="//" if case == "bound" else None,
                      fill=case != "bound", edgecolor="black" if case == "bound" else None)
        for bar, v in zip(bars, vals, strict=True):
            if v > 0:
                ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_yscale("log")
    ax.set_xticks(range(len(sizes)), [f"{s}x{s}" for s in sizes])
    ax.set_ylabel("images / s (log scale)")
    m = result["machine"]
    ax.set_title(f"batch {result['config']['batch_size']} on {result['config']['device']} "
                 f"({m['gpu'] or m['cpu']}, {m['cores']} cores)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.margins(y=0.25)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def save_outputs(result: dict[str, Any], json_path: str | Path | None = None, markdown_path: str | Path | None = None,
                 plot_path: str | Path | None = None) -> list[Path]:
    """Write whichever of JSON, markdown and PNG were asked for; returns the paths written."""
    written = []
    if json_path:
        written.append(save_json(result, json_path))
    if markdown_path:
        p = Path(markdown_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(to_markdown(result))
        written.append(p)
    if plot_path:
        written.append(save_plot(result, plot_path))
    return written
