"""The accelerator path without an accelerator: op counts on ``meta``, fused kernels under TRITON_INTERPRET=1.

Without CUDA the fused Triton kernels run in Triton's interpreter on the CPU (the env var must be set
before the kernels are first imported); with CUDA (the device check) the same tests run the compiled
kernels on the GPU. Either way they are compared with the torch path on the same device.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before augkit's kernels are first imported

import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import augkit as ak
from augkit import functional as F
from augkit.backends import fused as fz
from augkit.backends.tensor import TensorBackend
from augkit.bench.opcount import OpCounter, account, count_pipeline_ops

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEV = torch.device("cpu" if INTERPRETED or not torch.cuda.is_available() else "cuda")  # where the fused tests run
triton_ok = fz.available() and (INTERPRETED or DEV.type == "cuda")
needs_triton = pytest.mark.skipif(not triton_ok, reason="needs triton, and CUDA or TRITON_INTERPRET=1")
TOL = 1e-5 if DEV.type == "cpu" else 1e-4  # fused vs torch path; a GPU's libdevice math rounds differently
NOISE_TOL = 2e-7 if DEV.type == "cpu" else 2e-6

SEED_OPS_LIMIT = 60  # non-view ops per call of the seed pipeline off the CPU (issue 14)


# ---- op counts and bytes ---------------------------------------------------------------------
def test_seed_pipeline_ops_per_call_do_not_grow_with_batch():
    pipe = ak.default_pipeline()
    counts = {b: count_pipeline_ops(pipe, (b, 3, 224, 224)) for b in (64, 256)}
    assert counts[64].ops == counts[256].ops
    assert counts[64].by_name == counts[256].by_name
    assert counts[64].ops <= SEED_OPS_LIMIT, counts[64].by_name
    assert counts[64].by_name["grid_sampler_2d"] == 1  # one warp for the flips and the zoom


def test_ops_per_call_do_not_grow_with_batch_for_every_op():
    ops = [ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(fill=0.5), ak.Contrast(), ak.GaussianNoise(), ak.Normalize()]
    pipe = ak.Pipeline(ops, seed=0)
    assert count_pipeline_ops(pipe, (8, 3, 64, 64)).ops == count_pipeline_ops(pipe, (200, 3, 64, 64)).ops
    for dtype in (torch.uint8, torch.float32):
        p = ak.Pipeline(ops, seed=0, check="never")
        a = count_pipeline_ops(p, (8, 3, 64, 64), dtype=dtype)
        b = count_pipeline_ops(p, (200, 3, 64, 64), dtype=dtype)
        assert a.ops == b.ops


def test_normalize_makes_no_host_tensor_per_call():
    pipe = ak.Pipeline([ak.Normalize()], seed=0)
    count_pipeline_ops(pipe, (4, 3, 8, 8))  # warm: constants made once
    x, p = torch.empty(4, 3, 8, 8, dtype=torch.uint8, device="meta"), pipe.sample(4).to("meta")
    with OpCounter() as c:
        pipe(x, params=p)
    assert "lift_fresh" not in c.count.by_name and "_to_copy" not in c.count.by_name, c.count.by_name


def test_counter_counts_bytes_of_a_known_op():
    x = torch.empty(10, 4, device="meta")
    with OpCounter() as c:
        x.mul(2.0).view(40)
    assert (c.count.ops, c.count.views) == (1, 1)
    assert (c.count.bytes_read, c.count.bytes_written) == (160, 160)


@pytest.mark.parametrize("batch", [64, 256])
def test_accounting_meets_the_fused_targets(batch):
    pipe = ak.default_pipeline()
    f = account(pipe, (batch, 3, 224, 224), "fused")
    t = account(pipe, (batch, 3, 224, 224), "torch")
    assert f["kernels"] <= 3 and f["torch_ops"] == 0
    # uint8 read twice (the grey-mean pass and the main pass) and float32 written once
    assert f["bytes_per_element"] == pytest.approx(6.0, abs=0.01)
    assert f["bytes_per_element"] <= 12 < t["bytes_per_element"]
    assert t["kernels"] == count_pipeline_ops(pipe, (batch, 3, 224, 224)).ops


def test_fused_accounting_without_contrast_is_one_pass():
    pipe = ak.Pipeline([ak.HorizontalFlip(), ak.Zoom(), ak.GaussianNoise()], seed=0)
    f = account(pipe, (16, 3, 32, 32), "fused")
    assert f["triton_launches"] == 1 and f["bytes_per_element"] == pytest.approx(5.0)


# ---- fused kernels vs the torch path -----------------------------------------------------------
CASES = {
    "flips": [ak.HorizontalFlip(), ak.VerticalFlip()],
    "zoom": [ak.Zoom(scale=(0.6, 1.4))],
    "zoom-fill": [ak.HorizontalFlip(), ak.Zoom(scale=(0.5, 0.9), fill=0.7)],
    "contrast": [ak.Contrast(factor=(0.3, 1.8))],
    "noise": [ak.GaussianNoise(std=(0.02, 0.2))],
    "seed": ak.default_pipeline().ops,
    "two-runs": [ak.Zoom(), ak.Contrast(), ak.VerticalFlip(p=0.7), ak.GaussianNoise()],
}


def _pair(ops, x, seed=0):
    x = x.to(DEV)
    pipe = ak.Pipeline(ops, seed=seed, fused="never")
    fused = ak.Pipeline(ops, seed=seed, fused="always")
    p = pipe.sample(len(x))
    return pipe(x, params=p), fused(x, params=p), fused, p


@needs_triton
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_fused_matches_torch_path(name, dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (3, 3, 18, 21), generator=g, dtype=torch.uint8)
    x = x if dtype == torch.uint8 else x.float() / 255
    ref, y, fused, p = _pair(CASES[name], x)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    assert (y - ref).abs().max() <= TOL
    assert torch.equal(fused(x.to(DEV), params=p), y)  # exact replay


@needs_triton
def test_fused_flips_are_exact_and_normalize_matches():
    x = torch.randint(0, 256, (4, 1, 9, 14), dtype=torch.uint8)
    ref, y, *_ = _pair(CASES["flips"], x, seed=5)
    assert torch.equal(y, ref)  # integer source positions: no interpolation error at all
    ops = ak.default_pipeline().ops + [ak.Normalize(mean=(0.5,), std=(0.25,))]
    ref, y, *_ = _pair(ops, torch.randint(0, 256, (3, 3, 12, 10), dtype=torch.uint8))
    assert (y - ref).abs().max() <= TOL / 0.25  # the torch path's error scaled by 1 / std


@needs_triton
def test_fused_noise_hash_is_the_counter_based_generator():
    """The random bits are identical; the normals differ from torch's only by libm rounding (log, cos, sin)."""
    from augkit.backends._triton_kernels import noise_hash
    from augkit.random import fmix32_

    n, key = 300, 123456789
    got = torch.empty(n, dtype=torch.int32, device=DEV)
    noise_hash[(3,)](got, key, n, BLOCK=128)
    got = got.cpu()
    ref = F._hashed_counter(n, torch.device("cpu")) + key
    fmix32_(ref, torch.empty_like(ref))
    assert torch.equal(got, ref)
    # whole field: float input 0.5 and a std that never clips
    x = torch.full((3, 3, 11, 13), 0.5)
    ref, y, _, p = _pair([ak.GaussianNoise(std=(0.01, 0.05))], x, seed=2)
    std = torch.where(p[0]["apply"], p[0]["std"], 0.0)
    field = F.normal_field(p[0]["seed"].cpu(), std.cpu(), torch.empty(3, 3 * 11 * 13)).view(3, 3, 11, 13)
    assert (y.cpu() - (field + 0.5)).abs().max() <= NOISE_TOL
    assert (y - ref).abs().max() <= NOISE_TOL


@needs_triton
def test_fused_and_torch_fall_back_per_run():
    """A run the fused path cannot do (4 channels with Contrast is rejected; 2 Contrasts in a run) runs on torch."""
    ops = [ak.Zoom(), ak.Contrast(), ak.Contrast(factor=(0.5, 0.6)), ak.HorizontalFlip(), ak.GaussianNoise()]
    be = TensorBackend(ops, fused="always")
    x = torch.randint(0, 256, (2, 3, 10, 12), dtype=torch.uint8)
    assert [be._covered(r, x) for r in be.runs] == [False, True]
    ref, y, *_ = _pair(ops, x)
    assert (y - ref).abs().max() <= TOL
    assert not fz.covers([ak.GaussianNoise()], 4, torch.uint8) and not fz.covers([ak.Zoom()], 3, torch.float64)


def test_fused_argument_is_checked():
    with pytest.raises(ValueError, match="fused must be one of"):
        ak.Pipeline([ak.Zoom()], fused="yes")
    with pytest.raises(ValueError, match="check must be one of"):
        ak.Pipeline([ak.Zoom()], check="sometimes")


# ---- float range check ----------------------------------------------------------------------
def test_check_modes():
    bad = torch.full((1, 3, 4, 4), 2.0)
    good = torch.full((1, 3, 4, 4), 0.5)
    with pytest.raises(ValueError, match=r"float x must hold values in \[0, 1\]"):
        ak.Pipeline([ak.Contrast()], check="always")(bad)
    assert ak.Pipeline([ak.Contrast()], check="never")(bad).shape == bad.shape
    first = ak.Pipeline([ak.Contrast()], check="first")
    first(good)
    first(bad)  # checked once per device, then trusted (no host sync per call on an accelerator)
    again = ak.Pipeline([ak.Contrast()], check="first")
    with pytest.raises(ValueError):
        again(bad)  # a failed first check is not counted as done
    with pytest.raises(ValueError):
        again(bad)
    with pytest.raises(ValueError):  # auto is "always" on the CPU
        ak.Pipeline([ak.Contrast()])(bad)


# ---- threads -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 96])
def test_two_threads_on_one_pipeline_equal_sequential_results(size):
    pipe = ak.default_pipeline(seed=3)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(0, 256, (6, 3, size, size), generator=g, dtype=torch.uint8) for _ in range(2)]
    ps = [pipe.sample(6) for _ in range(2)]
    want = [pipe(x, params=p).clone() for x, p in zip(xs, ps)]
    got: list[list[torch.Tensor]] = [[], []]
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        for _ in range(15):
            got[k].append(pipe(xs[k], params=ps[k]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        assert len(got[k]) == 15
        for y in got[k]:
            assert torch.equal(y, want[k])
    # outputs handed out are distinct tensors, never rewritten under a caller
    assert len({y.data_ptr() for ys in got for y in ys[-1:]}) == 2


def test_threads_drawing_their_own_params_replay_sequentially():
    pipe = ak.default_pipeline(seed=9)
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    out: list[tuple[torch.Tensor, ak.Params]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            y, p = pipe(x, return_params=True)
            with lock:
                out.append((y.clone(), p))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 30
    for y, p in out:
        assert torch.isfinite(y).all() and torch.equal(pipe(x, params=p), y)


def test_backend_pickles_without_scratch():
    pipe = ak.default_pipeline()
    pipe(torch.zeros(8, 3, 64, 64, dtype=torch.uint8))
    be = pickle.loads(pickle.dumps(pipe._tensor))
    assert be.fused == "auto" and not be._workspaces
    assert len(pickle.dumps(pipe._tensor)) < 20_000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fused_matches_torch_and_cpu():
    x = torch.randint(0, 256, (16, 3, 64, 80), dtype=torch.uint8)
    for ops in CASES.values():
        pipe = ak.Pipeline(ops, seed=0, fused="never")
        p = pipe.sample(16)
        cpu = pipe(x, params=p)
        torch_cuda = pipe(x.cuda(), params=p)
        fused = ak.Pipeline(ops, seed=0)(x.cuda(), params=p)  # auto: fused on CUDA
        assert (torch_cuda.cpu() - cpu).abs().max() <= 2e-4
        assert (fused.cpu() - cpu).abs().max() <= 2e-4
        assert np.isfinite(fused.cpu().numpy()).all()


# ---- the general geometric form (for any run with a per-sample matrix and an output size) -------
def _grid_sample_ref(x, inv, size, border, fill, interpolation):
    """torch's grid_sample (align_corners=False) at the same output -> input pixel map."""
    (ho, wo), (h, w) = size, x.shape[2:]
    ys, xs = torch.meshgrid(torch.arange(ho, dtype=torch.float32), torch.arange(wo, dtype=torch.float32), indexing="ij")
    sx = inv[:, 0, 0, None, None] * xs + inv[:, 0, 1, None, None] * ys + inv[:, 0, 2, None, None]
    sy = inv[:, 1, 0, None, None] * xs + inv[:, 1, 1, None, None] * ys + inv[:, 1, 2, None, None]
    grid = torch.stack(((2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1), -1)
    xf = x.float() / 255 if x.dtype == torch.uint8 else x
    pad = {"constant": "zeros", "reflect": "reflection", "replicate": "border"}[border]
    shift = fill if border == "constant" else 0.0  # zeros padding around (x - fill) reads fill outside
    return torch.nn.functional.grid_sample(xf - shift, grid, mode=interpolation, padding_mode=pad, align_corners=False) + shift


@needs_triton
@pytest.mark.parametrize("border", ["constant", "reflect", "replicate"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_fused_warp_general_matrix_matches_grid_sample(border, interpolation):
    g = torch.Generator().manual_seed(7)
    b, c, h, w, ho, wo = 3, 3, 13, 17, 11, 19
    x = torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)
    angle, scale = torch.rand(b, generator=g) * 6.28, 0.6 + torch.rand(b, generator=g)
    inv = torch.zeros(b, 2, 3)
    inv[:, 0, 0], inv[:, 0, 1] = angle.cos() / scale, -angle.sin() / scale
    inv[:, 1, 0], inv[:, 1, 1] = angle.sin() / scale, angle.cos() / scale
    inv[:, 0, 2], inv[:, 1, 2] = torch.rand(b, generator=g) * w, torch.rand(b, generator=g) * h - 3
    out = fz.warp(x.to(DEV), inv.to(DEV), torch.empty(b, c, ho, wo, device=DEV), border=border, fill=0.3,
                  interpolation=interpolation).cpu()
    ref = _grid_sample_ref(x, inv, (ho, wo), border, 0.3, interpolation)
    assert (out - ref).abs().max() <= TOL


@needs_triton
def test_fused_warp_reflect_is_numpy_symmetric_padding():
    x = torch.arange(2 * 5, dtype=torch.float32).view(1, 1, 2, 5) / 10
    inv = torch.tensor([[[1.0, 0.0, -3.0], [0.0, 1.0, -2.0]]])  # shift by whole pixels: pure lookups
    out = fz.warp(x.to(DEV), inv.to(DEV), torch.empty(1, 1, 6, 11, device=DEV), border="reflect").cpu()
    ref = np.pad(x[0, 0].numpy(), ((2, 2), (3, 3)), mode="symmetric")
    assert np.array_equal(out[0, 0].numpy(), ref)


def test_fused_warp_checks_its_arguments():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="border must be one of"):
        fz.warp(x, torch.zeros(2, 2, 3), torch.empty(2, 3, 4, 4), border="wrap")
    with pytest.raises(ValueError, match="inv must be"):
        fz.warp(x, torch.zeros(2, 3, 3), torch.empty(2, 3, 4, 4))


# ---- the kernels compile for real GPUs (ahead of time: Triton's ptxas, no GPU needed) --------------
COMPILE = """
import sys, torch, augkit as ak
from augkit.backends import fused as fz
for arch in (90,):  # H100 / H200
    for ops, c, dtype in [(ak.default_pipeline().ops, 3, torch.uint8), ([ak.Zoom(), ak.Normalize()], 1, torch.float32)]:
        run = fz.FusedRun(ops, tuple(range(len(ops))))
        for reduce in ([True, False] if run.stop >= 0 else [False]):
            k = fz.compile_for(run, c, dtype, reduce, arch)
            assert k.asm["cubin"], (arch, ops)
            print(arch, len(ops), reduce, "ok")
"""


@pytest.mark.skipif(not fz.available(), reason="needs triton")
def test_fused_kernels_compile_for_cuda():
    """Compiled (not interpreted) in a child process: sm_90 cubins for two plans (a failed compile shows here)."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("ok") == 3


@needs_triton
def test_fused_run_with_a_given_geometry_equals_in_kernel_composition():
    """A run whose matrices come from the torch side (ops with no in-kernel matrix) gives the same result."""
    ops = [ak.HorizontalFlip(p=0.5), ak.Zoom(scale=(0.7, 1.3), fill=0.2), ak.Contrast(), ak.GaussianNoise()]
    pipe = ak.Pipeline(ops, seed=4)
    b, h, w = 3, 14, 18
    x = torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8)
    p = pipe.sample(b)
    run = fz.FusedRun(ops, (0, 1, 2, 3))
    part = lambda shape: torch.empty(shape, device=DEV)  # noqa: E731
    want = run(x.to(DEV), 1 / 255, 0.0, p.to(DEV), torch.empty(b, 3, h, w, device=DEV), part)
    # inverse by hand: flip x -> (w-1) - x, zoom u -> (u - c) / s + c; flip applied first, so inv = F^-1 o Z^-1
    s = torch.where(p[1]["apply"], p[1]["scale"], 1.0)
    f = torch.where(p[0]["apply"], -1.0, 1.0)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    inv = torch.zeros(b, 2, 3)
    inv[:, 0, 0], inv[:, 0, 2] = f / s, f * cx * (1 - 1 / s) + torch.where(p[0]["apply"], w - 1.0, 0.0)
    inv[:, 1, 1], inv[:, 1, 2] = 1 / s, cy * (1 - 1 / s)
    got = run(x.to(DEV), 1 / 255, 0.0, p.to(DEV), torch.empty(b, 3, h, w, device=DEV), part,
              geometry=fz.Geometry(inv.to(DEV), (h, w), "constant", 0.2, "bilinear"))
    assert (got - want).abs().max() <= TOL
    assert fz.covers([ak.Normalize()], 3, torch.uint8) and fz.covers(ops, 3, torch.uint8, matrix=True)
    with pytest.raises(ValueError, match="geometry must have"):
        run(x, 1 / 255, 0.0, p, torch.empty(b, 3, h, w), part, geometry=fz.Geometry(inv, (h + 1, w)))


# ---- CUDA graphs ---------------------------------------------------------------------------------
def test_compile_needs_a_cuda_batch():
    with pytest.raises(ValueError, match="needs a CUDA tensor batch"):
        ak.default_pipeline().compile(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_pipeline_equals_eager_call_for_call():
    x = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, device="cuda")
    eager, graphed = ak.default_pipeline(seed=5), ak.default_pipeline(seed=5)
    g = graphed.compile(x)
    kept = []
    for _ in range(3):
        y, p = g(x, return_params=True)
        want, pw = eager(x, return_params=True)
        assert torch.equal(p[2]["scale"], pw[2]["scale"]) and torch.equal(p[4]["seed"], pw[4]["seed"])
        assert (y - want).abs().max() <= 1e-6
        kept.append((y, y.clone()))
    assert all(torch.equal(a, b) for a, b in kept)  # outputs handed out are never written again
    with pytest.raises(ValueError, match="compile again"):
        g(x[:4])


GENERAL_CASES = {
    "affine+contrast": [ak.Affine(rotate=25, translate=0.1, scale=(0.8, 1.2), shear=8, fill=0.3), ak.Contrast(), ak.GaussianNoise()],
    "rotate-reflect": [ak.HorizontalFlip(), ak.Rotate(30, border="reflect"), ak.Contrast()],
    "translate-nearest": [ak.Translate(0.2, interpolation="nearest", border="replicate"), ak.VerticalFlip(), ak.Normalize()],
    "rot90-square": [ak.Rot90(), ak.HorizontalFlip(), ak.GaussianNoise()],
    "zoom-resize": [ak.Zoom(), ak.Rotate(10), ak.Resize((11, 16))],
}


@needs_triton
@pytest.mark.parametrize("name", list(GENERAL_CASES))
def test_fused_general_geometry_matches_torch_path(name):
    """Runs of ops with no in-kernel matrix hand the kernel their matrices (``TensorBackend._geometry``)."""
    ops = GENERAL_CASES[name]
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (4, 3, 16, 16), generator=g, dtype=torch.uint8)
    be = TensorBackend(ops, fused="always")
    p = ak.Pipeline(ops, seed=1).sample(4).to(DEV)
    from augkit.backends.tensor import _Value

    geo = be._geometry(0, _Value(x.to(DEV), 1 / 255, 0.0), p)
    assert geo is not None and be._covered(be.runs[0], x, True)
    ref, y, fused, p = _pair(ops, x, seed=1)
    assert y.shape == ref.shape
    assert (y - ref).abs().max() <= TOL, float((y - ref).abs().max())
    assert torch.equal(fused(x.to(DEV), params=p), y)  # exact replay


@needs_triton
def test_fused_general_geometry_falls_back_for_crops_and_antialias():
    x = torch.randint(0, 256, (2, 3, 20, 24), dtype=torch.uint8)
    from augkit.backends.tensor import _Value

    for ops in ([ak.RandomResizedCrop(12), ak.Contrast()], [ak.Rotate(10), ak.CenterCrop(10)], [ak.Resize((10, 12), antialias=False)]):
        be = TensorBackend(ops, fused="always")
        p = ak.Pipeline(ops, seed=0).fill_sized(ak.Pipeline(ops, seed=0).sample(2), (20, 24))
        geo = be._geometry(0, _Value(x, 1 / 255, 0.0), p)
        rotating_crop = isinstance(ops[0], ak.Rotate)  # no clip box when the run rotates: the kernel takes it
        assert (geo is not None) == rotating_crop
        ref, y, *_ = _pair(ops, x)
        assert (y - ref).abs().max() <= 1e-4
