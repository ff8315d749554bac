"""Virtual codebooks (SPEC §6) and 1D/2D block grids (SPEC §7).

A codebook is never stored, only its seed. Entry ``k`` of step ``n`` is a standard normal vector
that depends only on ``(seed, n, k)`` and ``GENERATOR_VERSION``: entries are made on the CPU in
fixed chunks of ``CHUNK`` rows, each chunk from its own generator seeded by a hash of
``(version, seed, n, chunk)``. So a size-K codebook is a prefix of the size-2K one (nested), and
nothing depends on the batch, the device or the process count. Step ``n = -1`` is the dedicated
init codebook (SPEC §5).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from einops import rearrange

GENERATOR_VERSION = "gddcm-codebook-v1"
CHUNK = 256
INIT_STEP = -1          # the init codebook's step index
GAUSSIAN_INIT_STEP = -2  # the stream for the 'gaussian' init's ε (entry 0)


def chunk_seed(seed: int, n: int, chunk: int) -> int:
    """63-bit generator seed of one chunk: a hash of (version, seed, step, chunk)."""
    h = hashlib.blake2b(f"{GENERATOR_VERSION}:{int(seed)}:{int(n)}:{int(chunk)}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


class VirtualCodebook:
    """Seeded Gaussian codebooks for every step, generated lazily and cached up to ``cache_bytes``.

    The chain visits steps cyclically (every batch walks n = -1..N-1), where LRU eviction would
    give a zero hit rate once the steps outgrow the cache; so the cache keeps what fits and
    regenerates the rest (generation is cheap next to a backbone call).

    ``dim`` is the number of values of one entry (the whole latent, C·H·W). Entries come back
    float32 ``(K, dim)`` on the requested device.
    """

    def __init__(self, seed: int, dim: int, cache_bytes: int = 4 << 30):
        self.seed = int(seed)
        self.dim = int(dim)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict = OrderedDict()
        self._cached_bytes = 0

    def chunk(self, n: int, j: int) -> torch.Tensor:
        """Rows ``[j·CHUNK, (j+1)·CHUNK)`` of step ``n``'s codebook (CPU, float32)."""
        g = torch.Generator(device="cpu").manual_seed(chunk_seed(self.seed, n, j))
        return torch.randn(CHUNK, self.dim, generator=g, dtype=torch.float32)

    def entries(self, n: int, K: int, device="cpu") -> torch.Tensor:
        """The first ``K`` entries of step ``n`` (cached while they fit in ``cache_bytes``)."""
        key = (n, K, str(device))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        nchunks = -(-K // CHUNK)
        C = torch.cat([self.chunk(n, j) for j in range(nchunks)])[:K].to(device)
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
            j0, j1 = start // CHUNK, -(-stop // CHUNK)
            block = torch.cat([self.chunk(n, j) for j in range(j0, j1)])[: stop - start]
            yield start, block.to(device)

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
