"""Shared pytest fixtures.

``../shared`` (CIFAR-10 as ImageFolder, taef2 weights; DESIGN "This workplace's facts") sits next
to the repository here but not in a fresh clone: tests that need it use these fixtures and are
skipped, with the reason, when it is missing. Set ``RDPM_SHARED=/path/to/shared`` to point
elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIP_REASON = "needs ../shared (CIFAR-10 / taef2 weights); absent in a fresh clone"


def find_shared_dir() -> Path | None:
    """``$RDPM_SHARED`` if set, else ``<repo>/../shared``; None when it does not exist."""
    env = os.environ.get("RDPM_SHARED")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if path.is_dir() else None


def _require(sub: str) -> Path:
    root = find_shared_dir()
    if root is None or not (root / sub).exists():
        where = root / sub if root is not None else (os.environ.get("RDPM_SHARED")
                                                     or REPO_ROOT.parent / "shared")
        pytest.skip(f"{SKIP_REASON} (looked for {where}; set RDPM_SHARED to override)")
    return root / sub


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared read-only material, or skip."""
    return _require(".")


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """``shared/data/cifar10`` (``train/``, ``val/`` ImageFolder trees), or skip."""
    return _require("data/cifar10")


@pytest.fixture(scope="session")
def taef2_dir() -> Path:
    """``shared/weights/taef2`` (taef2_encoder.pth / taef2_decoder.pth), or skip."""
    return _require("weights/taef2")


@pytest.fixture
def cli_error(capsys):
    """``cli_error(main, argv)``: run a command's ``main(argv)`` expecting bad-input handling: exit
    code 2 and exactly one ``PROG: error: ...`` line on stderr (progress bars aside). Returns that line."""
    def run(main, argv) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv])
        assert e.value.code == 2, e.value.code
        err = [ln for ln in capsys.readouterr().err.splitlines()
               if ln.strip() and "it/s]" not in ln and not ln.startswith("[20")]     # progress bars, log lines
        assert len(err) == 1 and ": error: " in err[0], err
        return err[0]
    return run
