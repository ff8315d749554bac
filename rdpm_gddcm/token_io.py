"""Token streams (SPEC §8): single-image files with packed indices, and dataset shards.

Single-image file layout (little endian)::

    b"GDDCMTOK"  u32 format_version  u32 header_bytes  header (UTF-8 JSON)
    u64 payload_bits  payload (indices packed at ⌈log2 K⌉ bits, MSB first)  u32 crc32(all before)

The header holds everything decoding needs (codebook generator version and seed, family, backbone
and autoencoder identity, shapes, grid, K per step, the plan triples, init, final sampler,
label). Readers refuse wrong magic, unknown versions, truncation and checksum mismatches.

Dataset shards: ``shard-00000.tokens.npy`` (uint16/uint32, (n, R, G)), ``shard-00000.labels.npy``,
optionally ``shard-00000.states.npy`` / ``.xh.npy`` (fp16 per-step chain states for RDPM
training), and one ``manifest.json`` holding the shared header. Every file is written to a
temporary name and renamed, so concurrent processes never see half a shard.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .files import save_npy_atomic, write_bytes_atomic
from .header import FORMAT_VERSION, TokenFormatError, TokenHeader  # noqa: F401  (TokenFormatError: this module's error)

MAGIC = b"GDDCMTOK"
SUPPORTED_VERSIONS = (1,)


def bits_for(K: int) -> int:
    return max(1, math.ceil(math.log2(K)))


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers (< 2**bits) MSB-first into bytes."""
    idx = np.asarray(indices, dtype=np.uint64).ravel()
    if idx.size and int(idx.max()) >= (1 << bits):
        raise ValueError(f"index {int(idx.max())} does not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bitarr = ((idx[:, None] >> shifts[None]) & np.uint64(1)).astype(np.uint8).ravel()
    return np.packbits(bitarr).tobytes()


def unpack_indices(data: bytes, count: int, bits: int) -> np.ndarray:
    bitarr = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    if bitarr.size < count * bits:
        raise TokenFormatError("token payload is shorter than its header says (truncated file)")
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.uint64))
    return (bitarr.reshape(count, bits).astype(np.uint64) * weights).sum(1).astype(np.int64)


def write_token_file(path, header: TokenHeader, tokens: np.ndarray):
    """One image's tokens (R, G) with its header."""
    bits = bits_for(max(header.codebook_sizes))
    tokens = np.asarray(tokens)
    expect = (header.num_token_rows, header.num_blocks)
    if tokens.shape != expect:
        raise ValueError(f"tokens have shape {tokens.shape}, header says {expect}")
    hb = json.dumps(header.to_json(), sort_keys=True).encode()
    payload = pack_indices(tokens, bits)
    body = MAGIC + struct.pack("<II", FORMAT_VERSION, len(hb)) + hb + struct.pack("<Q", tokens.size * bits) + payload
    write_bytes_atomic(path, body + struct.pack("<I", zlib.crc32(body)))


def read_token_file(path) -> tuple[TokenHeader, np.ndarray]:
    """Read and validate a token file; returns (header, tokens (R, G))."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"token file {p} does not exist")
    raw = p.read_bytes()
    if len(raw) < 16 or raw[:8] != MAGIC:
        raise TokenFormatError(f"{p} is not a gDDCM token file (bad magic); expected a file written by "
                               "`rdpm-codec encode`")
    version, hlen = struct.unpack("<II", raw[8:16])
    # the checksum first: a damaged file must not be mistaken for one from a newer version
    if zlib.crc32(raw[:-4]) != struct.unpack("<I", raw[-4:])[0]:
        raise TokenFormatError(f"{p} is corrupt or truncated (checksum mismatch); re-encode the image")
    if version not in SUPPORTED_VERSIONS:
        raise TokenFormatError(f"{p} has token format version {version}; this rdpm-gddcm reads "
                               f"{SUPPORTED_VERSIONS}: upgrade the package or re-encode")
    if len(raw) < 16 + hlen + 12:
        raise TokenFormatError(f"{p} is truncated (header incomplete)")
    try:
        header = TokenHeader.from_json(json.loads(raw[16:16 + hlen]), source=str(p))
    except json.JSONDecodeError as e:
        raise TokenFormatError(f"{p}: the header is not valid JSON ({e}); re-encode the image") from None
    (nbits,) = struct.unpack("<Q", raw[16 + hlen:24 + hlen])
    bits = bits_for(max(header.codebook_sizes))
    R, G = header.num_token_rows, header.num_blocks
    if nbits != R * G * bits:
        raise TokenFormatError(f"{p}: payload has {nbits} bits, header implies {R * G * bits}")
    tokens = unpack_indices(raw[24 + hlen:-4], R * G, bits).reshape(R, G)
    return header, tokens


# ------------------------------------------------------------------------------------------ shards
def token_dtype(K: int):
    return np.uint16 if K <= 65536 else np.uint32


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"


def shard_length(i: int, num_images: int, shard_size: int) -> int:
    """How many images shard i holds when ``num_images`` are split into shards of ``shard_size``."""
    return max(0, min((i + 1) * shard_size, num_images) - i * shard_size)


def shard_complete(out_dir, i: int, expected: int | None = None) -> bool:
    """Shard i is finished: its ``.done`` marker exists and its token and label arrays load with the
    marker's image count, which is ``expected`` if given (a shard damaged after it was finished, or
    the partial last shard of a run with another N, counts as unfinished, so a re-run rewrites it)."""
    out = Path(out_dir)
    done = out / f"{shard_name(i)}.done"
    if not done.exists():
        return False
    try:
        n = json.loads(done.read_bytes())["num_images"]
        if expected is not None and n != expected:
            return False
        for kind in ("tokens", "labels"):
            arr = np.load(out / f"{shard_name(i)}.{kind}.npy", mmap_mode="r")
            if len(arr) != n:
                return False
    except (OSError, ValueError, KeyError):
        return False
    return True


def write_shard(out_dir, i: int, tokens: np.ndarray, labels: np.ndarray, K: int, extras: dict | None = None):
    """Write shard i: tokens, labels and optional extra arrays, then its ``.done`` marker last."""
    out = Path(out_dir)
    save_npy_atomic(out / f"{shard_name(i)}.tokens.npy", tokens.astype(token_dtype(K)))
    save_npy_atomic(out / f"{shard_name(i)}.labels.npy", labels.astype(np.int64))
    for name, arr in (extras or {}).items():
        save_npy_atomic(out / f"{shard_name(i)}.{name}.npy", arr)
    write_bytes_atomic(out / f"{shard_name(i)}.done", json.dumps({"num_images": int(len(tokens))}).encode())


def write_manifest(out_dir, header: TokenHeader, shards: list[dict], extra: dict | None = None):
    man = {"format_version": FORMAT_VERSION, "header": header.to_json(), "shards": shards,
           "num_images": int(sum(s["num_images"] for s in shards)), **(extra or {})}
    write_bytes_atomic(Path(out_dir) / "manifest.json", json.dumps(man, indent=2, sort_keys=True).encode())


class ShardedTokens:
    """The (M, R, G) token indices of all shards, memory-mapped in their stored dtype (uint16 for
    K <= 65536) and read on demand as int64: an ImageNet 16x16 N=10 token set is 7 GB as uint16 and
    would be 29 GB per process as one in-memory int64 array. Indexing supports what the trainer uses:
    an int, a slice or an index array over images, optionally followed by row (and block) indices
    paired with it, e.g. ``tokens[idx, rows]``."""

    def __init__(self, arrays: list):
        self.arrays = arrays
        self.offsets = np.cumsum([0] + [len(a) for a in arrays])
        self.shape = (int(self.offsets[-1]),) + tuple(arrays[0].shape[1:])

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        idx = np.arange(len(self))[first] if isinstance(first, slice) else np.asarray(first)
        scalar = idx.ndim == 0
        idx = np.atleast_1d(idx).astype(np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"token index out of range for {len(self)} images")
        idx = np.where(idx < 0, idx + len(self), idx)
        shard = np.searchsorted(self.offsets, idx, side="right") - 1
        out = None
        for s in np.unique(shard):
            m = shard == s
            sub = tuple(np.asarray(r)[m] if np.ndim(r) else r for r in rest)
            got = np.asarray(self.arrays[s][(idx[m] - self.offsets[s],) + sub]).astype(np.int64)
            if out is None:
                out = np.empty((len(idx),) + got.shape[1:], np.int64)
            out[m] = got
        if out is None:                                   # empty selection
            out = np.empty((0,) + self.shape[1 + len(rest):], np.int64)
        return out[0] if scalar else out

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


class TokenDataset:
    """Read a token directory: ``tokens`` (M, R, G) (memory-mapped, read as int64), ``labels`` (M,),
    the shared header, and (memory-mapped) per-step states when they were saved."""

    def __init__(self, directory, mmap: bool = True):
        d = Path(directory)
        mf = d / "manifest.json"
        if not mf.exists():
            raise FileNotFoundError(f"no manifest.json in {d}: pass --tokens DIR written by rdpm-tokenize "
                                    "(an unfinished run has shards but no manifest: re-run rdpm-tokenize to finish it)")
        man = json.loads(mf.read_text())
        if man.get("format_version") not in SUPPORTED_VERSIONS:
            raise TokenFormatError(f"{mf} has unknown format version {man.get('format_version')}")
        self.manifest = man
        self.header = TokenHeader.from_json(man.get("header"), source=str(mf))
        toks, labs, self.states, self.xh = [], [], [], []
        for s in man["shards"]:
            base = d / s["name"]
            try:
                t = np.load(f"{base}.tokens.npy", mmap_mode="r" if mmap else None)
                lab = np.load(f"{base}.labels.npy")
            except (OSError, ValueError) as e:
                raise TokenFormatError(f"shard {base} is missing or corrupt ({e}); re-run rdpm-tokenize") from None
            if len(t) != s["num_images"] or len(lab) != len(t):
                raise TokenFormatError(f"shard {base} holds {len(t)} images, manifest says {s['num_images']}")
            toks.append(t)
            labs.append(lab)
            if Path(f"{base}.states.npy").exists():
                self.states.append(np.load(f"{base}.states.npy", mmap_mode="r" if mmap else None))
                self.xh.append(np.load(f"{base}.xh.npy", mmap_mode="r" if mmap else None))
        if not toks:
            raise TokenFormatError(f"{mf} lists no shards; re-run rdpm-tokenize")
        self.tokens = ShardedTokens(toks)
        self.labels = np.concatenate(labs)
        self.has_states = len(self.states) == len(toks) and len(toks) > 0
        self._offsets = self.tokens.offsets                # shard boundaries, shared with states_for

    def __len__(self):
        return len(self.tokens)

    def states_for(self, indices, steps=None) -> tuple[np.ndarray, np.ndarray]:
        """Cached (states, xh) of the given images, fp16: every step, (n, N, C, H, W) each; or with
        ``steps`` (one chain step per image) only that step, (n, C, H, W), reading no other step from
        the memory-mapped shards (training uses one step per example)."""
        st, xh = [], []
        for k, i in enumerate(np.asarray(indices)):
            s = int(np.searchsorted(self._offsets, i, side="right") - 1)
            j = (i - self._offsets[s]) if steps is None else (i - self._offsets[s], int(steps[k]))
            st.append(np.asarray(self.states[s][j]))
            xh.append(np.asarray(self.xh[s][j]))
        return np.stack(st), np.stack(xh)
