"""The README's "Reliability" table: what each bad-input case of ``tests/test_cli_errors.py`` gets.

    python benchmarks/bench_reliability.py --out benchmarks/results/reliability.json

Runs every case in-process (as the test does) and records the exit code and the one error line,
with the temporary folder's path replaced by ``TMP``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_cli_errors import CASES, GEN, MAINS, VP, prepare_workdir  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="benchmarks/results/reliability.json")
    a = p.parse_args()
    rows = []
    for prog, args, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            prepare_workdir(Path(tmp))
            fill = {"tmp": tmp, "gen": str(GEN), "vp": str(VP)}
            err = io.StringIO()
            code = 0
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    MAINS[prog]([x.format(**fill) for x in args])
                except SystemExit as e:
                    code = e.code
            lines = [ln for ln in err.getvalue().splitlines() if ": error: " in ln]
            msg = (lines[0] if lines else "").replace(tmp, "TMP").replace(str(ROOT) + "/", "")
        shown = " ".join(x.replace("{tmp}", "TMP").replace("{gen}", "assets/cifar10-generator-pixels")
                         .replace("{vp}", "assets/cifar10-pixels-vp") for x in args)
        rows.append({"command": prog, "arguments": shown, "exit_code": code, "message": msg})
        print(f"{code} {msg}")
    Path(a.out).write_text(json.dumps({"command": "python benchmarks/bench_reliability.py " + " ".join(sys.argv[1:]),
                                       "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
