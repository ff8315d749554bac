"""SPEC §6-§7: virtual codebooks are identical across calls, chunk sizes, K prefixes, devices; v2
codebooks are the same bytes on every CPU instruction set (golden hashes; CI reruns this module
under ATEN_CPU_CAPABILITY=avx2 and =default) and on CUDA."""
import hashlib

import pytest
import torch

from rdpm_gddcm.codebooks import CHUNK, CODEBOOK_V1, CODEBOOK_V2, GENERATOR_VERSIONS, Grid, VirtualCodebook, \
    _as_i32, _mix32, gaussian_table

# results that depend on float kernels: CI reruns these under other ATEN_CPU_CAPABILITY values
pytestmark = pytest.mark.numerics


@pytest.mark.parametrize("version", GENERATOR_VERSIONS)
def test_same_across_instances_and_calls(version):
    a = VirtualCodebook(seed=3, dim=48, version=version).entries(5, 300)
    b = VirtualCodebook(seed=3, dim=48, version=version).entries(5, 300)
    assert torch.equal(a, b)
    assert not torch.equal(a, VirtualCodebook(seed=4, dim=48, version=version).entries(5, 300))
    assert not torch.equal(a, VirtualCodebook(seed=3, dim=48, version=version).entries(6, 300))


@pytest.mark.parametrize("version", GENERATOR_VERSIONS)
def test_nested_in_K(version):
    cb = VirtualCodebook(seed=1, dim=20, version=version)
    big = cb.entries(0, 3 * CHUNK + 17)
    for K in [1, 10, CHUNK, CHUNK + 1, 2 * CHUNK]:
        assert torch.equal(cb.entries(0, K), big[:K])


@pytest.mark.parametrize("version", GENERATOR_VERSIONS)
def test_chunked_iteration_and_gather_agree_with_full(version):
    cb = VirtualCodebook(seed=9, dim=12, cache_bytes=0, version=version)     # nothing cached: every path regenerates
    K = 5 * CHUNK + 3
    full = torch.cat([c for _, c in cb.iter_chunks(2, K, rows=CHUNK)])
    full2 = torch.cat([c for _, c in cb.iter_chunks(2, K, rows=3 * CHUNK)])
    assert torch.equal(full, full2) and full.shape == (K, 12)
    idx = torch.tensor([[0, 1], [K - 1, 700]])
    assert torch.equal(cb.gather(2, idx, K), full[idx])


@pytest.mark.parametrize("version", GENERATOR_VERSIONS)
def test_standard_normal_statistics(version):
    e = VirtualCodebook(seed=0, dim=256, version=version).entries(0, 1024)
    assert abs(e.mean().item()) < 0.01 and abs(e.std().item() - 1) < 0.01


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


# v2's bytes, pinned: the same on every CPU instruction set (and on CUDA: the gpu test below)
GOLDEN_V2 = {
    "table": "8babbcaf96568f10165a1eab530c0e5c92d04de96761b6dbb3dadfa94baba37f",
    (0, 3 * 32 * 32, 0, 256): "c56025926f5cbfebc1c3f2d032c9ff52360c7281e995ca116eff73841c73f432",
    (7, 32 * 8 * 8, -1, 300): "45f293fa406b8e886d3c122b913dfe921fa71251b8ea570918387f31e541fc7f",
    (123, 5, 4, 17): "63cba672b0e799aadd58f5e928d6b9aa02766ad96e6810ae52b1215c56abd992",
}


def test_v2_golden_hashes():
    assert _sha(gaussian_table()) == GOLDEN_V2["table"]
    for key, want in GOLDEN_V2.items():
        if key == "table":
            continue
        seed, dim, n, K = key
        assert _sha(VirtualCodebook(seed=seed, dim=dim, version=CODEBOOK_V2).entries(n, K)) == want, (seed, dim, n, K)


def test_v2_mixer_matches_the_unsigned_reference():
    def mix(x):                                                   # lowbias32 on Python ints
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)
    xs = torch.randint(0, 2 ** 32, (4096,), dtype=torch.int64, generator=torch.Generator().manual_seed(0))
    xs[:4] = torch.tensor([0, 1, 2 ** 31, 2 ** 32 - 1])
    got = (_mix32(_as_i32(xs)).to(torch.int64) & 0xFFFFFFFF).tolist()
    assert got == [mix(v) for v in xs.tolist()]


def test_v2_is_gaussian_and_coordinates_do_not_depend_on_dim():
    from scipy import stats
    e = VirtualCodebook(seed=1, dim=1000, version=CODEBOOK_V2).entries(0, 200)
    assert stats.kstest(e.flatten().double().numpy(), "norm").pvalue > 1e-3
    assert abs(torch.corrcoef(torch.stack([e[:, :-1].flatten(), e[:, 1:].flatten()]))[0, 1]) < 0.01
    assert torch.equal(VirtualCodebook(seed=1, dim=999, version=CODEBOOK_V2).entries(0, 200), e[:, :999])
    t = gaussian_table().double()
    assert t.mean().abs() < 1e-12 and abs(t.std(unbiased=False) - 1) < 1e-6 and torch.all(t[1:] > t[:-1])


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="newer rdpm-gddcm"):
        VirtualCodebook(seed=0, dim=4, version="gddcm-codebook-v9")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_same_on_cuda():
    """v2 generated *on* the GPU is the CPU's bytes; v1 is generated on the CPU and moved."""
    cb = VirtualCodebook(seed=2, dim=30, version=CODEBOOK_V2)
    assert torch.equal(VirtualCodebook(seed=2, dim=30, version=CODEBOOK_V2).entries(1, 100, "cuda").cpu(),
                       cb.entries(1, 100, "cpu"))
    for key, want in GOLDEN_V2.items():
        if key != "table":
            seed, dim, n, K = key
            assert _sha(VirtualCodebook(seed=seed, dim=dim, version=CODEBOOK_V2).entries(n, K, "cuda").cpu()) == want
    v1 = VirtualCodebook(seed=2, dim=30, version=CODEBOOK_V1)
    assert torch.equal(v1.entries(1, 100, "cuda").cpu(), v1.entries(1, 100, "cpu"))


def test_grid_blocks_roundtrip_and_assemble():
    g = Grid((3, 8, 8), 2, 4)
    x = torch.randn(5, 3, 8, 8)
    assert g.to_blocks(x).shape == (5, 8, 3 * 4 * 2)
    assert torch.equal(g.from_blocks(g.to_blocks(x)), x)
    entries = torch.randn(16, 3 * 8 * 8)
    idx = torch.randint(0, 16, (5, 8))
    c = g.assemble(entries, idx)
    # block (i, j) of image b equals entry idx[b, i*4+j] restricted to that block
    e = entries.reshape(16, 3, 8, 8)
    for b in range(5):
        for i in range(2):
            for j in range(4):
                k = idx[b, i * 4 + j]
                assert torch.equal(c[b, :, 4 * i:4 * i + 4, 2 * j:2 * j + 2], e[k, :, 4 * i:4 * i + 4, 2 * j:2 * j + 2])


def test_grid_must_divide_latent():
    with pytest.raises(ValueError, match="does not divide"):
        Grid((3, 8, 8), 3, 3)
    with pytest.raises(ValueError, match="HxW"):
        Grid.parse((3, 8, 8), "four")
