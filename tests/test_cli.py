"""CLI conventions: --version, python -m augkit, help everywhere, one-line argument errors with exit 2."""

from __future__ import annotations

import argparse
import importlib.abc
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import augkit
from augkit.bench import peers as P
from augkit.bench.report import format_table, to_markdown
from augkit.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("demo", "bench", "expand", "study")


def _env() -> dict[str, str]:
    """Run this checkout's augkit in a subprocess, whatever is installed."""
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_version_in_process_and_as_python_m_augkit(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"augkit {augkit.__version__}\n"
    r = subprocess.run([sys.executable, "-m", "augkit", "--version"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0 and r.stdout == f"augkit {augkit.__version__}\n" and r.stderr == ""


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["demo", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got 0"),
        (["demo", "--size", "big"], "argument --size: expected an integer >= 8, got 'big'"),
        (["bench", "--sizes", "32,0"], "argument --sizes: expected values >= 8, got '32,0'"),
        (["bench", "--peers", "kornia,foo"], "argument --peers: expected values among kornia,albumentations,torch,torchvision, got foo"),
        (["bench", "--repeats", "0"], "argument --repeats: expected an integer >= 1, got 0"),
        (["bench", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
        (["study", "--fraction", "1.5"], "argument --fraction: expected a number in (0, 1], got 1.5"),
        (["study", "--seeds", "0"], "argument --seeds: expected an integer >= 1, got 0"),
        (["expand", "src"], "the following arguments are required: dst, --copies"),
        (["demo", "-q", "-v"], "argument -v/--verbose: not allowed with argument -q/--quiet"),
        ([], "the following arguments are required"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_argument_errors_are_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and err.startswith("augkit") and "Traceback" not in err


def test_values_the_library_rejects_are_one_line_exit_2(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path), "--device", "nope", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == "augkit study: error: device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got 'nope'\n"


def test_run_failures_are_one_line_exit_1(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "missing" / "demo.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "augkit demo: error: FileNotFoundError: out" in err and "does not exist" in err
    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda", "--quick", "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("augkit bench: error: RuntimeError: device='cuda' but CUDA is not available")


def test_a_traceback_never_reaches_the_user_from_python_m_augkit(tmp_path):
    r = subprocess.run([sys.executable, "-m", "augkit", "demo", "--batch-size", "0"], capture_output=True, text=True,
                       env=_env(), cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["augkit demo: error: argument --batch-size: expected an integer >= 1, got 0 "
                                             "(see augkit demo --help)"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_has_a_description_help_on_every_flag_and_shown_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no line wrapping inside the help texts
    parser = build_parser()
    subs = _subparsers(parser)
    assert sorted(subs) == sorted(COMMANDS)
    for name, sub in subs.items():
        assert sub.description and len(sub.description) > 80, name
        for action in sub._actions:
            assert action.help, f"augkit {name} {action.option_strings or action.dest} has no help text"
        flags = {s for a in sub._actions for s in a.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose"} <= flags, name
    text = subs["demo"].format_help()
    assert "(default: 64)" in text and "(default: 224)" in text and "(default: augkit-demo.png)" in text
    assert "(default: 32,224)" in subs["bench"].format_help()
    assert "(default: False)" not in text  # switches say nothing about a default


def test_torchvision_available_skips_a_broken_torchvision(monkeypatch):
    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torchvision" or name.startswith("torchvision."):
                raise RuntimeError("operator torchvision::nms does not exist")  # what a torch mismatch raises
            return None

    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    assert P.torchvision_available() is False


def _fake_result() -> dict:
    row = {"group": "batched", "case": "augkit", "label": "augkit Pipeline (batched)", "size": 32, "img_s": 1000.0,
           "status": "ok", "note": "", "augkit_ratio": 1.0, "pct_bound": 10.0}
    return {
        "machine": {"versions": {"torch": torch.__version__}, "gpu": None, "cpu": "test cpu", "cores": 2, "torch_threads": 2,
                    "date": "2026-01-01", "load_avg_1m": None},
        "config": {"device": "cpu", "batch_size": 64, "sizes": [32], "repeats": 3, "warmup": 1, "quick": True},
        "bounds": [{"size": 32, "batch_size": 64, "median_s": 0.01, "img_s": 10000.0, "gb_s": 1.0}],
        "rows": [row],
        "targets": [{"device": "cpu", "batch_size": 64, "size": 32, "what": "augkit / Kornia", "need": 4.0, "value": 3.0,
                     "met": False}],
    }


def test_bench_table_names_the_bound_and_leaves_targets_to_the_docs():
    text = format_table(_fake_result())
    assert "Targets" not in text and "MISSED" not in text
    assert "Bound: uint8→float32 copy, reused buffer" in text and "last-level cache" in text
    assert "0.98 MB per pass)" in text  # 64 * 3 * 32 * 32 * 5 bytes; cache size unknown: no verdict
    cached = _fake_result()
    cached["machine"]["cache_bytes"] = 2**20
    assert "0.98 MB per pass: cache-resident)" in format_table(cached) and "Last-level cache here: 1.0 MB." in format_table(cached)
    cached["machine"]["cache_bytes"] = 2**19
    assert "0.98 MB per pass: exceeds the cache (DRAM))" in format_table(cached)
    md = to_markdown(_fake_result())
    assert "uint8→float32 copy, reused buffer" in md and "**Targets**" in md  # docs/benchmarks.md keeps them


def test_bench_plot_changes_no_global_matplotlib_state(tmp_path):
    pytest.importorskip("matplotlib")
    code = (
        "import sys, json, matplotlib\n"
        "matplotlib.use('pdf')\n"
        "from augkit.bench.report import save_plot\n"
        f"save_plot(json.loads({_json(_fake_result())!r}), {str(tmp_path / 'p.png')!r})\n"
        "assert matplotlib.get_backend() == 'pdf', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _json(d: dict) -> str:
    import json

    return json.dumps(d)


def test_missing_extras_are_named_before_any_work(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert main(["bench", "--plot", str(tmp_path / "p.png"), "--quick"]) == 1
    assert capsys.readouterr().err == "augkit bench: error: --plot needs matplotlib: pip install 'augkit[bench]'\n"


def _square_reference(path: Path, side: int = 160):
    """What the demo's preview tile should be, by PIL directly: shorter side to ``side``, centre cut."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = side / min(w, h)
        nw, nh = max(side, round(w * s)), max(side, round(h * s))
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - side) // 2, (nh - side) // 2
        return np.asarray(im.crop((left, top, left + side, top + side)))


def test_demo_previews_a_pipeline_file_on_a_folder_of_mixed_sizes(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (90, 200, 3), dtype=np.uint8)).save(folder / "a_wide.png")
    Image.fromarray(rng.integers(0, 256, (300, 120), dtype=np.uint8)).save(folder / "b_tall_grey.png")  # 1 channel
    (folder / "notes.txt").write_text("not an image")
    yaml_file = tmp_path / "pipe.yaml"
    yaml_file.write_text("seed: 3\nops:\n- name: HorizontalFlip\n  p: 1.0\n- name: Invert\n  p: 1.0\n")
    out = tmp_path / "preview.png"
    assert main(["demo", "--pipeline", str(yaml_file), "--images", str(folder), "--out", str(out), "--no-timing", "-v"]) == 0
    printed = capsys.readouterr().out
    assert f"preview grid (2 image(s) from {folder}, then 5 augmented copies each)" in printed
    assert "HorizontalFlip(p=1.0)" in printed and "throughput" not in printed
    grid = np.asarray(Image.open(out))
    cell, pad = 160 + 4, 4
    assert grid.shape == (2 * cell + pad, 6 * cell + pad, 3)
    for i, name in enumerate(("a_wide.png", "b_tall_grey.png")):  # rows in name order
        want = _square_reference(folder / name)
        y = pad + i * cell
        assert np.array_equal(grid[y : y + 160, pad : pad + 160], want)
        for k in range(1, 6):  # every copy: flipped, then inverted (exact on uint8)
            x = pad + k * cell
            assert np.array_equal(grid[y : y + 160, x : x + 160], 255 - want[:, ::-1])


def test_demo_pipeline_with_a_sizing_op_and_normalize_on_the_bundled_photos(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    yaml_file = tmp_path / "pipe.yaml"
    yaml_file.write_text("ops:\n- name: Resize\n  size: 48\n- name: Normalize\n")
    out = tmp_path / "p.png"
    assert main(["demo", "--pipeline", str(yaml_file), "--out", str(out), "--max-images", "2", "--size", "32",
                 "--batch-size", "4", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "the bundled photographs" in printed and "augkit" in printed and "Kornia is compared on the default" in printed
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * 164 + 4, 6 * 164 + 4, 3)  # cells as large as the larger tile (the 160 originals)
    tile = grid[4 : 4 + 48, 4 + 164 : 4 + 164 + 48]
    assert tile.std() > 10  # a picture (Normalize left out of the preview), not a saturated block
    assert (grid[4 + 48 : 4 + 160, 4 + 164 : 4 + 328] == 255).all()  # the rest of a 48x48 tile's cell is background


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--images", "NOPE"], "images 'NOPE' is not a folder"),
        (["--pipeline", "NOPE.yaml"], "pipeline 'NOPE.yaml' is not a file"),
        (["--max-images", "0"], "argument --max-images: expected an integer >= 1, got 0"),
        (["--images", "EMPTY"], "holds no images"),
    ],
)
def test_demo_preview_argument_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").mkdir()
    try:
        code = main(["demo", "--no-timing", "--out", str(tmp_path / "x.png"), *argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("augkit demo: error: ") and message in err
    assert not (tmp_path / "x.png").exists()


def test_demo_unreadable_image_is_one_line_exit_1(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    assert main(["demo", "--images", str(folder), "--out", str(tmp_path / "x.png"), "--no-timing"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read image" in err and "broken.png" in err


def test_demo_previews_16_bit_images_in_the_data_modules_colours(tmp_path):
    """A 16-bit grey PNG in --images is read as augkit reads it everywhere (round(v / 257)),
    not clipped to white as PIL's convert("RGB") would."""
    import numpy as np
    from PIL import Image

    from augkit.demo import load_preview_images

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((50, 70), 51400, np.uint16)).save(folder / "deep.png")
    tiles = load_preview_images(folder, 1, side=32)
    assert tiles.shape == (1, 3, 32, 32) and (tiles == 200).all()
