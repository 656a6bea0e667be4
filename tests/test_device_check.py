"""The device check's CPU-only parts run here, so the script a maintainer runs on a GPU cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_check  # noqa: E402

from augkit.bench import cuda as C  # noqa: E402


def test_dry_run_writes_every_section(tmp_path):
    assert device_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "device-check-dry.json").read_text())
    assert {"accounting", "agreement", "syncs", "timings"} <= set(r)
    assert {a["pipeline"] for a in r["agreement"]} >= {"HorizontalFlip", "Zoom", "Contrast", "GaussianNoise", "seed pipeline"}
    assert all(a["ok"] for a in r["agreement"])
    fused = [a for a in r["accounting"] if a["path"] == "fused"]
    assert fused and all(a["kernels"] <= 3 and a["bytes_per_element"] <= 12 for a in fused)
    cases = {row["case"]: row for row in r["timings"]["rows"]}
    for case in ("augkit", "augkit-replay", "augkit-torch-replay", "kornia"):
        assert cases[case]["status"] == "ok" and cases[case]["img_s"] > 0 and cases[case]["pct_bound"] > 0
    assert "inactive" in cases["augkit"]["note"]  # honest about the CPU run
    assert cases["augkit-graph"]["status"] == "skipped" and "CUDA" in cases["augkit-graph"]["note"]
    assert cases["augkit"]["augkit_ratio"] == 1.0
    md = (tmp_path / "device-check-dry.md").read_text()
    assert "| fused |" in md and "Device vs CPU" in md


def test_missing_peer_is_skipped_with_a_note(monkeypatch):
    import augkit as ak
    from augkit.bench import peers as P

    def broken(*a, **k):
        raise ImportError("No module named 'kornia'")

    monkeypatch.setattr(P, "kornia_peer", broken)
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    rows = C.accelerator_cases(ak.default_pipeline(), x, ("kornia",), calls=1, warmup=0, bandwidth=1e9)
    kornia = next(r for r in rows if r["case"] == "kornia")
    assert kornia["status"] == "skipped" and "kornia" in kornia["note"]
    assert next(r for r in rows if r["case"] == "augkit")["status"] == "ok"


def test_pipelined_timing_counts_calls():
    n = []
    t = C.time_pipelined(lambda: n.append(1), torch.device("cpu"), calls=7, warmup=2, rounds=3)
    assert len(n) == 2 + 3 * 7 and t["s_per_call"] == min(t["rounds_s_per_call"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit")
def test_cuda_request_without_cuda_exits_cleanly(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "cuda" in p.stderr.lower()
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "device_check.sh")]).returncode == 0
