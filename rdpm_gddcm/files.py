"""Files: atomic writes, and the one image-file lister every image reader uses.

Atomic writes: a reader sees the old file or the new one, never half of one; a failed
write leaves nothing behind; new files get the permissions the umask gives (like ``open``).

Every writer goes through :func:`atomic_path`: it yields a temporary name in the destination's
folder (``.NAME.PID.tmp``, same file system, so the final ``os.replace`` is atomic), creates the
folder if needed, and on any error removes the temporary file and re-raises.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def _umask() -> int:
    """The process's umask (read from /proc where there is one: setting it to read it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path next to ``path``; on success it replaces ``path``. ``suffix`` is kept
    at the end of the temporary name for writers that insist on one (``np.save`` adds ``.npy``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        # some writers (safetensors) create files 0600 whatever the umask: give the file what open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def cache_dir() -> Path:
    """This library's per-user cache: ``$RDPM_CACHE``, else ``$XDG_CACHE_HOME/rdpm-gddcm``, else
    ``~/.cache/rdpm-gddcm`` (converted FID weights, precision probes)."""
    root = os.environ.get("RDPM_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                        os.path.expanduser("~/.cache"), "rdpm-gddcm")
    return Path(root)


def write_bytes_atomic(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path, obj, allow_nan: bool = True) -> Path:
    """JSON (indented, ``default=str`` for paths and dtypes) written atomically."""
    text = json.dumps(obj, indent=2, default=str, allow_nan=allow_nan) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_npy_atomic(path, arr) -> Path:
    import numpy as np
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, arr)
    return Path(path)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_image_files(root, skip=None) -> list[Path]:
    """Image files under ``root`` (recursive, following links, hidden files and folders skipped),
    sorted by path relative to ``root``; ``skip(name)`` drops more (e.g. preview grids)."""
    root = Path(root)
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)
                  and not f.startswith(".") and not (skip and skip(f))]
    return sorted(files, key=lambda p: str(p.relative_to(root)))
