"""Speed on two kinds of CPU: this machine as it is, and as an AVX2-only CPU without native bf16
(``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``, how such a CPU's kernels run).

    python benchmarks/bench_portability.py --out benchmarks/results/portability.json

Per CPU mode, in a fresh process (the variables must be set before torch loads):
- fp32 vs bf16 autocast time of each network the commands run (the shipped VP backbone's
  sampling call and a training step of the same U-Net, the shipped generator's CFG forward + head,
  the proxy classifier's forward), median of --repeats after a warm-up, and what
  ``--mixed-precision auto`` resolves to for each;
- ``make demo``'s own command (``python -m rdpm_gddcm.demo``) from nothing, wall time and stage times
  (``--skip-demo`` leaves it out).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def worker_speed(repeats: int) -> dict:
    """Runs inside the mode's process."""
    import torch
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from device_check import timed
    from rdpm_gddcm.backbones import load_backbone
    from rdpm_gddcm.classifier import load_classifier
    from rdpm_gddcm.precision import cpu_native_bf16, resolve_precision
    from rdpm_gddcm.generator import load_generator
    torch.manual_seed(0)
    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_native_bf16()[0],
           "native_bf16_reason": cpu_native_bf16()[1], "threads": torch.get_num_threads(), "networks": []}

    def ac(dtype):
        return torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None)

    bb = load_backbone(str(ROOT / "assets" / "cifar10-pixels-vp"), "cpu")
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))

    def bb_call(dtype):
        bb.autocast_dtype = dtype
        bb.predict(x, 500, y)

    net = bb.net
    net.requires_grad_(True)                   # loaded backbones are frozen; train a copy's weights here
    opt = torch.optim.AdamW(net.parameters(), lr=1e-6)
    xt = torch.randn(32, 3, 32, 32)

    def bb_train(dtype):
        with ac(dtype):
            o = net(xt, torch.full((32,), 500.0), torch.randint(0, 10, (32,)))
        loss = o.float().square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    gen, meta = load_generator(str(ROOT / "assets" / "cifar10-generator-pixels"), "cpu")
    g = gen.cfg
    z = torch.randn(64, g.num_blocks, g.block_dim)
    row = torch.zeros(64, dtype=torch.long)
    lab = torch.cat([torch.randint(0, 10, (32,)), torch.full((32,), g.num_classes)])
    cb = torch.randn(g.codebook_size, g.num_blocks, g.block_dim)

    def gen_call(dtype):                       # a CFG batch of 32 images (64 rows)
        with torch.no_grad(), ac(dtype):
            gen.head_logits(gen(z, z, row, lab), cb)

    clf = load_classifier(str(ROOT / "assets" / "cifar10-classifier"))
    imgs = torch.randint(0, 255, (250, 3, 32, 32), dtype=torch.uint8)

    def clf_call(dtype):
        with torch.no_grad(), ac(dtype):
            clf.features(imgs)

    for name, fn, what in (("backbone sampling call (unet-cpu, 16 images)", bb_call, "backbone"),
                           ("backbone training step (unet-cpu, batch 32)", bb_train, "backbone-train"),
                           ("generator CFG forward + head (gen-mini, 32 images)", gen_call, "generator"),
                           ("proxy classifier features (250 images)", clf_call, "classifier")):
        fp32 = timed(lambda: fn(None), "cpu", repeats)
        bf16 = timed(lambda: fn(torch.bfloat16), "cpu", repeats)
        if what == "backbone":
            auto = bb.set_precision("auto", "cpu").mode
        elif what == "generator":
            auto = gen.resolve_precision("auto", "cpu").mode
        else:
            auto = resolve_precision("auto", "cpu", fn, f"bench-portability:{what}").mode
        out["networks"].append({"network": name, "fp32_s": fp32, "bf16_s": bf16, "bf16_over_fp32": bf16 / fp32,
                                "auto": auto})
    return out


def run_mode(mode: str, repeats: int, demo: bool) -> dict:
    env = {**os.environ, **MODES[mode], "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    with tempfile.TemporaryDirectory(prefix="rdpm-port-") as cache:
        env["RDPM_CACHE"] = cache               # a fresh machine: probes run (and are timed) anew
        r = subprocess.run([sys.executable, __file__, "--worker", "--repeats", str(repeats)], env=env,
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode:
            raise SystemExit(f"worker failed in mode {mode}:\n{r.stderr[-3000:]}")
        res = {"mode": mode, "env": MODES[mode], **json.loads(r.stdout.strip().splitlines()[-1])}
        if demo:
            out = Path(tempfile.mkdtemp(prefix="rdpm-demo-"))
            t0 = time.time()
            d = subprocess.run([sys.executable, "-m", "rdpm_gddcm.demo", "--out", str(out)], env=env, cwd=ROOT,
                               capture_output=True, text=True)
            wall = time.time() - t0
            if d.returncode:
                raise SystemExit(f"demo failed in mode {mode}:\n{d.stdout[-2000:]}\n{d.stderr[-3000:]}")
            summary = json.loads((out / "demo_summary.json").read_text())
            res["demo"] = {"wall_s": wall, "stages": summary["stages"], "fid": summary.get("fid")}
            shutil.rmtree(out, ignore_errors=True)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/portability.json")
    p.add_argument("--modes", default="native,avx2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-demo", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker_speed(a.repeats)))
        return
    rows = [run_mode(m, a.repeats, not a.skip_demo) for m in a.modes.split(",")]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    res = {"command": "python benchmarks/bench_portability.py " + " ".join(sys.argv[1:]),
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "loadavg": load},
           "modes": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
