"""Virtual codebooks (SPEC §6) and 1D/2D block grids (SPEC §7).

A codebook is never stored, only its seed. Entry ``k`` of step ``n`` is a standard normal vector
that depends only on ``(seed, n, k)`` and the generator version; entries are made in fixed chunks
of ``CHUNK`` rows, so a size-K codebook is a prefix of the size-2K one (nested), and nothing
depends on the batch or the process count. Step ``n = -1`` is the dedicated init codebook (SPEC §5).

Two generator versions (recorded in every token header):

- ``gddcm-codebook-v2`` (new tokens): the same float32 bytes on every CPU instruction set and on
  CUDA, because no floating-point arithmetic is involved. A 32-bit counter-based hash of
  ``(seed, n, entry k, coordinate pair j)`` (Wellons' ``lowbias32`` mixer in wrapping int32
  arithmetic) gives two 16-bit numbers, and each picks one of 65,536 levels of a fixed table of
  the standard normal: the probability midpoints of its equal-mass cells, rescaled to unit
  variance (exact mean 0 by symmetry; |z| ≤ 4.33). The table is computed once in float64 and
  rounded to float32, and tests pin its hash and the hashes of whole codebooks under every
  ``ATEN_CPU_CAPABILITY``. Entries can be generated directly on the working device.
- ``gddcm-codebook-v1`` (tokens written before v2): ``torch.randn`` per chunk from a seeded CPU
  generator. Its bytes depend on the CPU's vector instructions (PyTorch's normal sampler has
  different AVX-512/AVX2/scalar paths), so a v1 file decodes exactly only on the kind of CPU that
  encoded it. Still decoded, with a note.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from einops import rearrange

CODEBOOK_V1 = "gddcm-codebook-v1"
CODEBOOK_V2 = "gddcm-codebook-v2"
GENERATOR_VERSION = CODEBOOK_V2          # what new token files use
GENERATOR_VERSIONS = (CODEBOOK_V1, CODEBOOK_V2)
CHUNK = 256
INIT_STEP = -1          # the init codebook's step index
GAUSSIAN_INIT_STEP = -2  # the stream for the 'gaussian' init's ε (entry 0)
V1_NOTE = ("codebook generator v1 (tokens written before v2) depends on the CPU's vector instructions: the "
           "file decodes exactly only on the kind of CPU that encoded it")


def chunk_seed(seed: int, n: int, chunk: int) -> int:
    """v1: 63-bit generator seed of one chunk, a hash of (version, seed, step, chunk)."""
    h = hashlib.blake2b(f"{CODEBOOK_V1}:{int(seed)}:{int(n)}:{int(chunk)}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


# ------------------------------------------------------------------------------------ v2 generator
_M32 = 0xFFFFFFFF
_LEVELS = 1 << 16
_TABLES: dict = {}


def _i32(c: int) -> int:
    """A 32-bit pattern as the signed int32 value with the same bits."""
    return c - (1 << 32) if c >= 1 << 31 else c


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' ``lowbias32`` finaliser on int32 bit patterns: multiplications wrap mod 2³² (two's
    complement, as every CPU and GPU kernel computes them) and right shifts are made logical with
    a mask, so the bits are those of the unsigned reference on every device."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _i32(0x7FEB352D)
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _i32(0x846CA68B)
    return x ^ ((x >> 16) & 0xFFFF)


def gaussian_table() -> torch.Tensor:
    """65,536 float32 levels of N(0, 1): the midpoints (in probability) of its equal-mass cells,
    rescaled to unit variance. Computed once in float64 (CPU)."""
    if "cpu" not in _TABLES:
        from statistics import NormalDist
        q = NormalDist().inv_cdf
        mid = [q((i + 0.5) / _LEVELS) for i in range(_LEVELS // 2)]          # lower half; symmetric
        levels = mid + [-v for v in reversed(mid)]
        std = (sum(v * v for v in levels) / _LEVELS) ** 0.5
        _TABLES["cpu"] = torch.tensor([v / std for v in levels], dtype=torch.float64).float()
    return _TABLES["cpu"]


def _table_on(device) -> torch.Tensor:
    key = str(torch.device(device))
    if key not in _TABLES:
        _TABLES[key] = gaussian_table().to(device)
    return _TABLES[key]


def v2_keys(seed: int, n: int) -> tuple[int, int]:
    h = hashlib.blake2b(f"{CODEBOOK_V2}:{int(seed)}:{int(n)}".encode(), digest_size=8).digest()
    return int.from_bytes(h[:4], "little"), int.from_bytes(h[4:], "little")


def v2_rows(seed: int, n: int, start: int, stop: int, dim: int, device="cpu") -> torch.Tensor:
    """Entries ``[start, stop)`` of step ``n`` (float32, (stop-start, dim)), computed on ``device``.
    Coordinates 2j and 2j+1 of entry k are the low and high 16 bits of
    ``h = mix(mix(k ^ key1) ^ mix(j ^ key2))``, each looked up in :func:`gaussian_table`."""
    k1, k2 = v2_keys(seed, n)
    half = (dim + 1) // 2
    k = torch.arange(start, stop, dtype=torch.int64, device=device)[:, None]
    j = torch.arange(half, dtype=torch.int64, device=device)[None, :]
    a = _mix32(_as_i32(k ^ k1))                               # per entry
    b = _mix32(_as_i32(j ^ k2))                               # per coordinate pair
    h = _mix32(a ^ b)
    idx = torch.stack([h & 0xFFFF, (h >> 16) & 0xFFFF], -1).flatten()           # int32 indices
    return _table_on(device).index_select(0, idx).reshape(stop - start, 2 * half)[:, :dim]


def _as_i32(x: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2³²) to int32 with the same low 32 bits."""
    x = x & _M32
    return torch.where(x >= 1 << 31, x - (1 << 32), x).to(torch.int32)


class VirtualCodebook:
    """Seeded Gaussian codebooks for every step, generated lazily and cached up to ``cache_bytes``.

    The chain visits steps cyclically (every batch walks n = -1..N-1), where LRU eviction would
    give a zero hit rate once the steps outgrow the cache; so the cache keeps what fits and
    regenerates the rest (generation is cheap next to a backbone call).

    ``dim`` is the number of values of one entry (the whole latent, C·H·W). Entries come back
    float32 ``(K, dim)`` on the requested device.
    """

    def __init__(self, seed: int, dim: int, cache_bytes: int = 4 << 30, version: str = GENERATOR_VERSION):
        if version not in GENERATOR_VERSIONS:
            raise ValueError(f"unknown codebook generator {version!r} (this version knows "
                             f"{', '.join(GENERATOR_VERSIONS)}): the tokens come from a newer rdpm-gddcm; upgrade it")
        self.seed = int(seed)
        self.dim = int(dim)
        self.version = version
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict = OrderedDict()
        self._cached_bytes = 0

    def chunk(self, n: int, j: int, device="cpu") -> torch.Tensor:
        """Rows ``[j·CHUNK, (j+1)·CHUNK)`` of step ``n``'s codebook (float32; v1 is made on the CPU)."""
        if self.version == CODEBOOK_V2:
            return v2_rows(self.seed, n, j * CHUNK, (j + 1) * CHUNK, self.dim, device)
        g = torch.Generator(device="cpu").manual_seed(chunk_seed(self.seed, n, j))
        return torch.randn(CHUNK, self.dim, generator=g, dtype=torch.float32).to(device)

    def _rows(self, n: int, start: int, stop: int, device) -> torch.Tensor:
        """Entries ``[start, stop)`` (v2: directly, on ``device``; v1: from whole CPU chunks)."""
        if self.version == CODEBOOK_V2:
            return v2_rows(self.seed, n, start, stop, self.dim, device)
        j0, j1 = start // CHUNK, -(-stop // CHUNK)
        block = torch.cat([self.chunk(n, j) for j in range(j0, j1)])
        return block[start - j0 * CHUNK: stop - j0 * CHUNK].to(device)

    def entries(self, n: int, K: int, device="cpu") -> torch.Tensor:
        """The first ``K`` entries of step ``n`` (cached while they fit in ``cache_bytes``)."""
        key = (n, K, str(device))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        C = self._rows(n, 0, K, device)
        size = C.numel() * 4
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[key] = C
            self._cached_bytes += size
        return C

    def iter_chunks(self, n: int, K: int, rows: int, device="cpu"):
        """Yield ``(offset, entries)`` covering the first K entries, ``rows`` at a time
        (a multiple of CHUNK): for codebooks too large to hold at once."""
        rows = max(CHUNK, rows - rows % CHUNK)
        for start in range(0, K, rows):
            stop = min(start + rows, K)
            yield start, self._rows(n, start, stop, device)

    def gather(self, n: int, idx: torch.Tensor, K: int, device="cpu") -> torch.Tensor:
        """Entries ``idx`` (any shape, values < K) of step ``n``: ``idx.shape + (dim,)``. Uses the
        cache when the whole codebook fits, else generates only the chunks that are used."""
        if K * self.dim * 4 <= self.cache_bytes:
            return self.entries(n, K, device)[idx.to(device)]
        flat = idx.flatten().cpu()
        out = torch.empty(flat.numel(), self.dim)
        for j in torch.unique(flat // CHUNK).tolist():
            sel = (flat // CHUNK) == j
            out[sel] = self.chunk(n, j)[flat[sel] % CHUNK]
        return out.reshape(*idx.shape, self.dim).to(device)


class Grid:
    """Split a latent (C, H, W) into gh × gw equal blocks, all channels of a block together (SPEC §7).
    ``1x1`` is the 1D setting (one index per step for the whole latent)."""

    def __init__(self, latent_shape, gh: int = 1, gw: int = 1):
        C, H, W = latent_shape
        if H % gh or W % gw:
            raise ValueError(f"grid {gh}x{gw} does not divide the latent's {H}x{W} spatial size; "
                             f"choose --grid with factors of {H} and {W}")
        self.latent_shape = (C, H, W)
        self.gh, self.gw = gh, gw
        self.bh, self.bw = H // gh, W // gw

    @classmethod
    def parse(cls, latent_shape, spec: str) -> "Grid":
        try:
            gh, gw = (int(v) for v in str(spec).lower().split("x"))
        except ValueError:
            raise ValueError(f"--grid must look like HxW (e.g. 1x1 or 4x4), got {spec!r}") from None
        return cls(latent_shape, gh, gw)

    @property
    def num_blocks(self) -> int:
        return self.gh * self.gw

    @property
    def block_dim(self) -> int:
        return self.latent_shape[0] * self.bh * self.bw

    def __str__(self):
        return f"{self.gh}x{self.gw}"

    def to_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, G, Db)."""
        return rearrange(x, "b c (gh bh) (gw bw) -> b (gh gw) (c bh bw)", gh=self.gh, gw=self.gw)

    def from_blocks(self, xb: torch.Tensor) -> torch.Tensor:
        """(B, G, Db) -> (B, C, H, W)."""
        C = self.latent_shape[0]
        return rearrange(xb, "b (gh gw) (c bh bw) -> b c (gh bh) (gw bw)", gh=self.gh, gw=self.gw,
                         c=C, bh=self.bh, bw=self.bw)

    def entries_to_blocks(self, entries: torch.Tensor) -> torch.Tensor:
        """Codebook entries (K, D) -> (K, G, Db): each entry restricted to each block."""
        return self.to_blocks(entries.reshape(-1, *self.latent_shape))

    def assemble(self, entries: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Noise for the chosen indices: block g of image b is entry idx[b, g] restricted to g.
        ``entries`` (K, D), ``idx`` (B, G) -> (B, C, H, W)."""
        eb = self.entries_to_blocks(entries)                         # (K, G, Db)
        g = torch.arange(self.num_blocks, device=idx.device)
        return self.from_blocks(eb[idx, g])                          # (B, G, Db)
