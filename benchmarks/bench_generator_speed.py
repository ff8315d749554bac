"""Generator training speed on this CPU: fp32 vs bf16 autocast, forward + backward of one batch.

    python benchmarks/bench_generator_speed.py --out benchmarks/results/generator_speed.json

The model body only (the tied head runs in fp32 in both cases). Times are CPU time of one thread
(``time.process_time``: robust to other jobs on the machine), median of the timed repeats after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.generator import build_generator, count_params  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="gen-mini")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # the shipped CIFAR-10 setting: 8x8 blocks of 48 values, 11 token maps, K=4096
    m = build_generator(a.model, num_blocks=64, block_dim=48, num_rows=11, codebook_size=4096, score="dot")
    sb, xb = torch.randn(a.batch, 64, 48), torch.randn(a.batch, 64, 48)
    row, y = torch.randint(11, (a.batch,)), torch.randint(10, (a.batch,))
    rows = []
    for prec in ("fp32", "bf16"):
        times = []
        for i in range(a.repeats + 1):
            t0 = time.process_time()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                f = m(sb, xb, row, y)
            f.float().sum().backward()
            if i:                                      # the first run is the warm-up
                times.append(time.process_time() - t0)
        rows.append({"precision": prec, "cpu_s_per_batch": sorted(times)[len(times) // 2], "batch": a.batch})
    res = {"model": a.model, "parameters": count_params(m), "rows": rows,
           "bf16_over_fp32": rows[1]["cpu_s_per_batch"] / rows[0]["cpu_s_per_batch"], "threads": 1,
           "measured": "CPU time (time.process_time) of forward + backward of the model body, median of repeats",
           "command": " ".join(["python", "benchmarks/bench_generator_speed.py", *sys.argv[1:]]),
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
           "loadavg": list(os.getloadavg())}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps({r["precision"]: round(r["cpu_s_per_batch"], 3) for r in rows}), f"ratio {res['bf16_over_fp32']:.2f}")


if __name__ == "__main__":
    main()
