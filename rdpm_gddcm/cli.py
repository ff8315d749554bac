"""What every command does with bad input: one ``PROG: error: ...`` line naming the thing and the
fix, exit code 2, no traceback (``RDPM_DEBUG=1`` shows it), and nothing written before the input
was checked. Also the argparse types that refuse nonsense options before any work starts.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable

DEBUG_ENV = "RDPM_DEBUG"


def run_command(prog: str, body: Callable[[], object]) -> int:
    """Run a command's body; known bad-input errors become one line on stderr and exit code 2."""
    from .token_io import TokenFormatError
    try:
        body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130)
    except (ValueError, TokenFormatError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as e:
        if os.environ.get(DEBUG_ENV):
            raise
        text = str(e)
        if "Traceback (most recent call last)" in text:      # re-raised from a DataLoader worker: its last line
            text = [ln for ln in text.splitlines() if ln.strip()][-1].split(": ", 1)[-1]
        msg = " ".join(text.split()) or type(e).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        raise SystemExit(2)
    return 0


def _number(kind, cond: Callable[[float], bool], what: str):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not cond(v):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return v
    parse.__name__ = what          # argparse shows the type's name in its messages
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
finite_float = _number(float, lambda v: True, "a finite number")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonneg_float = _number(float, lambda v: v >= 0, "a number >= 0")
probability = _number(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
open_probability = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
codebook_size = _number(int, lambda v: 2 <= v <= 65536, "an integer in [2, 65536] (a token needs at least 1 bit)")


def grid_spec(text: str) -> str:
    """``HxW`` with positive integers."""
    try:
        gh, gw = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW (e.g. 1x1 or 8x8)") from None
    if gh < 1 or gw < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both grid sides must be >= 1 (e.g. 1x1 or 8x8)")
    return f"{gh}x{gw}"


def class_labels(text: str) -> str:
    """Comma-separated non-negative integers (the range is checked against the model later)."""
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of class indices (e.g. 0,3,7)") \
            from None
    if any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: class indices are >= 0")
    return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the one-line error of every other bad input (no usage block; ``--help`` has it)."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)
