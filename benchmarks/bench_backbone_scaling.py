"""FID of a long backbone run against the images it has seen (the scaling curve).

For each checkpoint of ``--run`` not yet in the output JSON (or only ``--checkpoint``), export its
EMA weights (``rdpm-train-backbone --export-checkpoint``) and score the backbone's own sampler with
FID-N against the Inception features of all 5,000 ``val`` images (standard FID Inception, N
class-balanced samples, default 1,000: comparable with the pilots of ``bench_backbone_pilots.py``
and the generator's FID-1k rows, not a CIFAR-10 FID-50k), plus the proxy class accuracy.

    python benchmarks/bench_backbone_scaling.py --run runs/backbone-long --nfe 35 \
        --out benchmarks/results/backbone_scaling.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_backbone_pilots import sample_own, score, steps_for_nfe  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="an rdpm-train-backbone results dir")
    p.add_argument("--checkpoint", default=None, help="only this checkpoint (default: every one not scored yet)")
    p.add_argument("--num-images", type=int, default=1000)
    p.add_argument("--nfe", type=int, nargs="+", default=[35],
                   help="network evaluations of the own sampler (one FID each; Heun: (NFE+1)/2 steps)")
    p.add_argument("--cfg-scale", type=float, default=2.0)
    p.add_argument("--fid-reference", default=str(ROOT / "runs" / "fid-features" / "val-000000-005000.npy"))
    p.add_argument("--classifier", default=str(ROOT / "assets" / "cifar10-classifier"))
    p.add_argument("--out", required=True)
    a = p.parse_args()
    from rdpm_gddcm.autoencoders import load_autoencoder
    from rdpm_gddcm.backbones import load_network_backbone
    from rdpm_gddcm.train_backbone import export_checkpoint
    run, out = Path(a.run), Path(a.out)
    ckpts = [Path(a.checkpoint)] if a.checkpoint else sorted((run / "checkpoints").glob("step_*"))
    for ck in ckpts:
        if not (ck / "trainer_state.json").exists():
            continue
        res = json.loads(out.read_text()) if out.exists() else {"rows": []}
        export = export_checkpoint(run, str(ck), run / "export" / ck.name)
        bb = load_network_backbone(export)
        ae = load_autoencoder(bb.meta["autoencoder_spec"])
        for nfe in a.nfe:
            steps = steps_for_nfe(bb.family, nfe)
            if any(r["images_seen"] == bb.meta["images_seen"] and r["nfe"] == nfe and r.get("run", res.get("run")) == str(run)
                   for r in res["rows"]):
                continue
            t0 = time.time()
            imgs, labels = sample_own(bb, ae, a.num_images, steps, a.cfg_scale, seed=0)
            halvings = ({"ect_halvings": (bb.meta.get("train_config") or {}).get("ect_halvings", 8.0)}
                        if bb.family.name == "consistency" else {})
            row = {"run": str(run), **halvings, "images_seen": bb.meta["images_seen"],
                   "images_seen_total": bb.meta.get("images_seen_total", bb.meta["images_seen"]),
                   "optimizer_steps": bb.meta["steps"], "nfe": nfe, "steps": steps,
                   "sampler": f"{'consistency' if hasattr(bb.family, 'sampler_times') else bb.family.ode_solver}, "
                              f"{steps} steps, CFG {a.cfg_scale}",
                   "num_samples": len(imgs), "sample_s_per_image": (time.time() - t0) / len(imgs), **score(imgs, labels, a)}
            res["rows"].append(row)
            res["rows"].sort(key=lambda r: (r["images_seen"], r["nfe"]))
            cmd = shlex.join(["python", "benchmarks/bench_backbone_scaling.py", *sys.argv[1:]])
            res.setdefault("commands", [])
            if cmd not in res["commands"]:
                res["commands"].append(cmd)
            res.update({"run": str(run), "family": bb.family.name, "model": bb.meta.get("model"),
                        "train_config": bb.meta.get("train_config"), "torch": torch.__version__,
                        "machine": platform.processor() or platform.machine()})
            tmp = out.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(res, indent=2))
            tmp.replace(out)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
