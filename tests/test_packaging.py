"""The package as users get it: a wheel with the photos, py.typed, the licence and the CLI, installed
into a fresh venv and run from another folder; lean core dependencies; mypy clean."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import augkit
from augkit.images import SAMPLE_NAMES, sample_images

ROOT = Path(__file__).resolve().parent.parent
CORE = {"torch", "kornia", "albumentations", "numpy", "pillow", "pyyaml", "tqdm"}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _setuptools_major() -> int:
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0])
    except Exception:
        return 0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build a wheel from a copy of the source (the checkout stays free of build/ and egg-info)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "augkit", src / "augkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # build with the installed setuptools when it knows SPDX licences (>= 77): no index needed
    isolation = [] if _setuptools_major() >= 77 else ["--use-pep517"]
    no_isolation = ["--no-build-isolation"] if not isolation else []
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, *isolation, "-q", "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, env=_clean_env(),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = (tmp / "dist").glob("augkit-*.whl")
    return whl


def test_wheel_holds_photos_types_licence_and_entry_point(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in SAMPLE_NAMES:
            assert f"augkit/assets/{name}.jpg" in names
        assert "augkit/py.typed" in names and "augkit/__main__.py" in names
        info = next(n.rsplit("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
        assert f"{info}/licenses/LICENSE" in names and f"{info}/licenses/NOTICE" in names
        entry = z.read(f"{info}/entry_points.txt").decode()
        meta = email.message_from_bytes(z.read(f"{info}/METADATA"))
    assert "augkit = augkit.cli:main" in entry
    assert meta["License-Expression"] == "MIT"
    assert {"study", "bench", "dev"} <= set(meta.get_all("Provides-Extra"))
    assert any(u.startswith("Source, ") for u in meta.get_all("Project-URL"))
    requires = meta.get_all("Requires-Dist")
    core = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in requires if "extra ==" not in r}
    assert core == CORE  # no scikit-learn, matplotlib, scikit-image, scipy in the core
    extra = {r.split(";")[0].split(">")[0].strip().lower() for r in requires if "extra ==" in r}
    assert {"scikit-learn", "matplotlib", "lightning", "datasets", "mypy", "pytest"} <= extra


def test_installed_wheel_runs_the_demo_from_another_folder(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)  # torch & co come from the system
    py = env_dir / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=_clean_env())
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([str(py), "-c", "import augkit; print(augkit.__file__)"], capture_output=True, text=True,
                       cwd=work, env=_clean_env(), timeout=120)
    assert r.returncode == 0 and str(env_dir) in r.stdout, (r.stdout, r.stderr)  # the wheel's copy, not this checkout
    r = subprocess.run([str(env_dir / "bin" / "augkit"), "--version"], capture_output=True, text=True, cwd=work,
                       env=_clean_env(), timeout=120)
    assert r.returncode == 0 and r.stdout == f"augkit {augkit.__version__}\n"
    r = subprocess.run([str(py), "-m", "augkit", "demo", "--size", "32", "--batch-size", "4", "--out", "demo.png", "-q"],
                       capture_output=True, text=True, cwd=work, env=_clean_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "throughput on" in r.stdout and (work / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_photos_are_package_data_not_scikit_image():
    code = "import sys; sys.modules['skimage'] = None\nfrom augkit.images import sample_images\nprint(len(sample_images()))"
    env = {**_clean_env(), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "4", r.stderr
    photos = sample_images()
    assert {k: v.shape for k, v in photos.items()} == {
        "astronaut": (512, 512, 3), "coffee": (400, 600, 3), "chelsea": (300, 451, 3), "rocket": (427, 640, 3)}


def test_import_augkit_needs_no_extra():
    blocked = ("sklearn", "matplotlib", "skimage", "scipy", "lightning", "datasets")
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
            + "import augkit, augkit.train, augkit.bench, augkit.interop\nprint('ok')")
    env = {**_clean_env(), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_mypy_is_clean():
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "augkit"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
