"""augkit.random: the counter-based keyed draws, checked against a plain-Python murmur3 reference."""

import torch
from scipy import stats

from augkit.random import Draw, fmix32, fmix32_


def murmur_fmix32(h: int) -> int:
    """murmur3's fmix32, written from the reference C code (independent of augkit's two versions)."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) % 2**32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) % 2**32
    return h ^ (h >> 16)


def test_fmix32_matches_murmur3_on_ints_and_tensors():
    vals = [0, 1, 2**31, 2**32 - 1, 0xDEADBEEF, 12345678]
    assert [fmix32(v) for v in vals] == [murmur_fmix32(v) for v in vals]
    t = torch.tensor([v - 2**32 if v >= 2**31 else v for v in vals], dtype=torch.int32)
    assert [v % 2**32 for v in fmix32_(t).tolist()] == [murmur_fmix32(v) for v in vals]


def test_numpy_path_equals_the_tensor_path_for_any_batch_split():
    keys = torch.cat([torch.randint(0, 2**62, (62,), generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2**63 - 1])])
    for path in [(), (3,), (3, 1)]:
        big = Draw(keys, 7, path, numpy=False)  # int32 tensor arithmetic, as on an accelerator
        ref = [big.rand(2), big.words(3), big.integers(1, 4), big.bits31()]
        for i in range(0, 64, 4):
            small = Draw(keys[i : i + 4], 7, path)  # NumPy on the CPU
            got = [small.rand(2), small.words(3), small.integers(1, 4), small.bits31()]
            assert all(torch.equal(r[..., i : i + 4], g) for r, g in zip(ref, got))


def test_children_prefetch_equals_child_streams():
    keys = torch.arange(100)
    for n, numpy in ((3, True), (100, True), (100, False)):
        kids = Draw(keys[:n], 2, numpy=numpy).children(4, words=3)
        for i, kid in enumerate(kids):
            ref = Draw(keys[:n], 2, numpy=not numpy).child(i)
            # 2 + 1 words come from the block, the rest past it are hashed on demand
            assert torch.equal(kid.rand(2), ref.rand(2)) and torch.equal(kid.words(1), ref.words(1))
            assert torch.equal(kid.rand(2), ref.rand(2)) and torch.equal(kid.bits31(), ref.bits31())


def test_uniforms_are_uniform_and_independent_across_streams_and_keys():
    d = Draw(torch.arange(20_000))
    u = d.rand(2)
    v = Draw(torch.arange(20_000)).child(1).rand(1)[0]
    for sample in (u[0], u[1], v):
        assert stats.kstest(sample.double().numpy(), "uniform").pvalue > 1e-3
    for a, b in ((u[0], u[1]), (u[0], v), (u[0, :-1], u[0, 1:])):  # counters, streams, neighbouring keys
        assert abs(stats.pearsonr(a.numpy(), b.numpy())[0]) < 0.03
    ints = Draw(torch.arange(30_000)).integers(1, 4)
    assert stats.chisquare(torch.bincount(ints)[1:].numpy()).pvalue > 1e-3


def test_pipeline_params_equal_on_the_numpy_and_the_tensor_path(monkeypatch):
    """CPU draws run the ops' ``sample`` on NumPy arrays (``@array_api``); an accelerator runs it on
    int32 tensors: every op's params must be the same bits either way."""
    import augkit as ak
    from augkit import pipeline as P

    ops = [ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(), ak.Affine(scale=(0.8, 1.2), rotate=10, translate=0.1, shear=5),
           ak.Rotate(), ak.Translate(), ak.Rot90(), ak.RandomResizedCrop(16), ak.RandomCrop(8), ak.Contrast(), ak.GaussianNoise(),
           ak.Brightness(), ak.Saturation(), ak.Hue(), ak.ColorJitter(0.2, 0.2, 0.2, 0.1), ak.Gamma(), ak.Solarize(), ak.Posterize(),
           ak.Sharpness(), ak.GaussianBlur(), ak.Erasing(), ak.OneOf([ak.Zoom(), ak.Rotate()])]
    pipe = ak.Pipeline(ops, seed=0)
    keys = torch.arange(50) * 7919
    host = pipe.sample_keyed(keys, hw=(24, 32))

    class TensorDraw(Draw):
        def __init__(self, keys, seed=0, path=(), *, numpy=None):
            super().__init__(keys, seed, path, numpy=False)

    monkeypatch.setattr(P, "Draw", TensorDraw)
    ref = pipe.sample_keyed(keys, hw=(24, 32))
    assert sum(getattr(type(op).sample, "array_api", False) for op in ops) >= 20  # the NumPy path did run
    for i in range(len(ops)):
        assert host[i].keys() == ref[i].keys()
        for k in ref[i]:
            assert host[i][k].dtype == ref[i][k].dtype and torch.equal(host[i][k], ref[i][k]), (type(ops[i]).__name__, k)


def test_generator_draw_is_reproducible_uniform_and_the_same_on_both_paths():
    """Plain calls (no keys) take words from the pipeline's generator: a seeded pipeline repeats
    itself, the words are uniform, and the NumPy and tensor paths hand out the same bits."""
    import augkit as ak
    from augkit.random import GeneratorDraw

    got = []
    for numpy in (True, False):
        kids = GeneratorDraw(300, torch.Generator().manual_seed(3), numpy=numpy).children(3, words=2)
        # inside the prefetched block, past it (fresh words), ints and seeds
        got.append([kids[0].rand(2), kids[0].rand(3), kids[1].words(1), kids[2].integers(1, 4), kids[2].bits31()])
    for a, b in zip(*got):
        assert a.dtype == b.dtype and torch.equal(a, b)
    u = got[0][1].flatten().double().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    ints = got[0][3]
    assert set(ints.tolist()) == {1, 2, 3} and got[0][4].min() >= 0

    pipe = ak.default_pipeline(seed=7)
    first = [pipe.sample(16) for _ in range(3)]
    again = ak.default_pipeline(seed=7)
    for p, q in zip(first, [again.sample(16) for _ in range(3)]):
        assert all(torch.equal(p[i][k], q[i][k]) for i in range(len(pipe.ops)) for k in p[i])
    other = ak.default_pipeline(seed=8).sample(16)
    assert not torch.equal(other[2]["scale"], first[0][2]["scale"])


def test_a_device_named_two_ways_is_one_generator_also_after_pickling():
    """``pipe.generator`` caches by the name a caller used: "cpu" and torch.device("cpu") must
    still be one stream (two would repeat each other's draws), also in a pickled copy."""
    import pickle

    import augkit as ak

    pipe = ak.default_pipeline(seed=5)
    a, b = pipe.sample(8, "cpu"), pipe.sample(8, torch.device("cpu"))
    assert pipe.generator("cpu") is pipe.generator(torch.device("cpu"))
    ref = ak.default_pipeline(seed=5)
    a2, b2 = ref.sample(8, torch.device("cpu")), ref.sample(8, "cpu")
    assert torch.equal(a[2]["scale"], a2[2]["scale"]) and torch.equal(b[2]["scale"], b2[2]["scale"])
    assert not torch.equal(a[2]["scale"], b[2]["scale"])
    copy = pickle.loads(pickle.dumps(pipe))
    assert copy.generator("cpu") is copy.generator(torch.device("cpu"))
    assert torch.equal(copy.sample(8, "cpu")[2]["scale"], pipe.sample(8, torch.device("cpu"))[2]["scale"])
