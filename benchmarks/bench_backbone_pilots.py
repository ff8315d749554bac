"""Backbone recipes at equal CPU time, ranked by FID of each backbone's own sampler.

Each pilot trains ``rdpm-train-backbone`` from scratch on CIFAR-10 ``train`` (same seed, same data
order rule) for ``--minutes`` of CPU time (``--stop-after-cpu-minutes``, run with one thread; encoding
the dataset once is not counted; the run's learning rate is then
effectively constant after warm-up, as its cosine spans ``--max-steps 10**6``), exports the EMA
weights of its last checkpoint, and is scored by

- FID-N (standard FID Inception; N class-balanced samples, default 1,000) of its own deterministic
  ODE sampler with CFG at the same number of network evaluations for every pilot (``--nfe``: DDIM/Euler
  takes that many steps, EDM's Heun (NFE+1)/2), against the Inception features of all 5,000 ``val`` images (written by
  ``bench_fid_reference.py``); N is small, so the number ranks pilots, it is not a CIFAR-10 FID-50k;
- the class accuracy of those samples (the project's CIFAR-10 classifier, a proxy);
- held-out denoising loss: the family's own training loss on 1,000 ``val`` images (fixed noise),
  comparable only between pilots of the same family and space;
- images seen and images per second (what the time bought).

Latent pilots generate 64 px images through taef2; they are average-pooled to 32 px (the inverse of
the 2x upsampling the data went through) before Inception, so every row is scored at CIFAR's 32 px.

    python benchmarks/bench_backbone_pilots.py --pilot pixels-vp --pilot pixels-edm \
        --minutes 15 --out benchmarks/results/backbone_pilots.json

Pilots already in the output JSON are kept; a pilot whose run folder has a checkpoint is not retrained.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "cifar10"
TAEF2 = ROOT.parent / "shared" / "weights" / "taef2"

# name -> rdpm-train-backbone flags (besides data, results dir, seed and the time budget)
PILOTS = {
    "pixels-vp": "--image-size 32 --family vp --model unet-cpu",                       # today's recipe
    "pixels-edm": "--image-size 32 --family edm --model unet-cpu",
    "taef2-edm": f"--image-size 64 --autoencoder taef2:{TAEF2} --family edm --model unet-latent-cpu",
    "taef2-flow": f"--image-size 64 --autoencoder taef2:{TAEF2} --family flow --model unet-latent-cpu",
    "taef2-edm-s": f"--image-size 64 --autoencoder taef2:{TAEF2} --family edm --model unet-latent-s",
    "taef2-edm-b128": f"--image-size 64 --autoencoder taef2:{TAEF2} --family edm --model unet-latent-cpu "
                      "--global-batch-size 128 --lr 1e-3",
}


def train_pilot(name: str, a) -> Path:
    from rdpm_gddcm.training import find_checkpoint
    rd = Path(a.runs_dir) / name
    if find_checkpoint(rd, "latest") is None:
        if "taef2" in name:                       # the encoded dataset is the same for every taef2 pilot
            for other in Path(a.runs_dir).glob("taef2-*/latents-*.pt"):
                rd.mkdir(parents=True, exist_ok=True)
                if not (rd / other.name).exists():
                    os.link(other, rd / other.name)
                break
        cmd = [sys.executable, "-m", "rdpm_gddcm.train_backbone", "--data-path", str(DATA / "train"),
               "--results-dir", str(rd), "--max-steps", "1000000", "--warmup-steps", "50",
               "--global-batch-size", "64", "--lr", "5e-4", "--ckpt-every", "500", "--sample-every", "0",
               "--log-every", "50", "--global-seed", "0", "--stop-after-cpu-minutes", str(a.minutes),
               *shlex.split(PILOTS[name])]
        print("+", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    from rdpm_gddcm.train_backbone import export_checkpoint
    return export_checkpoint(rd, "latest", rd / "export-latest")


def throughput(rd: Path) -> dict:
    """Images seen and mean training images/s from the run's log (encoding the data excluded)."""
    rates = [float(ln.split(" img/s")[0].split()[-1]) for ln in (rd / "log.txt").read_text().splitlines()
             if " img/s" in ln]
    return {"images_per_s": float(np.mean(rates[1:] or rates)) if rates else None}


@torch.no_grad()
def heldout_loss(bb, ae, image_size: int, n: int = 1000) -> float:
    from rdpm_gddcm.data import balanced_indices, build_dataset
    from rdpm_gddcm.train_backbone import diffusion_loss
    ds = build_dataset(str(DATA / "val"), image_size, hflip=False)
    idx = balanced_indices(len(ds), n)
    x = torch.stack([ds[i][0] for i in idx])
    y = torch.tensor([int(ds[i][1]) for i in idx])
    g = torch.Generator().manual_seed(1234)
    losses = []
    for b in range(0, n, 100):
        lat = ae.encode(x[b:b + 100])
        losses.append(float(diffusion_loss(bb, lat, y[b:b + 100], g)))
    return float(np.mean(losses))


@torch.no_grad()
def sample_own(bb, ae, n: int, steps: int, cfg_scale: float, seed: int, batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """n class-balanced samples of the backbone's own sampler with CFG (``chain.own_sample``: the
    family's ODE, or the multistep consistency sampler), image i from its own generator; uint8 NHWC
    at 32 px."""
    from rdpm_gddcm.backbones import GuidedBackbone
    from rdpm_gddcm.chain import own_sample
    from rdpm_gddcm.metrics import resize_uint8, to_uint8
    from rdpm_gddcm.sample import image_generator, labels_for
    labels = labels_for(n, 10, None)
    guided = GuidedBackbone(bb, cfg_scale) if cfg_scale != 1.0 else bb
    out = []
    for b in range(0, n, batch):
        idx = np.arange(b, min(b + batch, n))
        gens = [image_generator(seed, int(i)) for i in idx]
        noise = torch.stack([torch.randn(*bb.latent_shape, generator=g) for g in gens])
        lat = own_sample(guided, noise, steps, torch.from_numpy(labels[idx]).long(), gens)
        img = to_uint8(ae.decode(lat).float().clamp(-1, 1))
        out.append(resize_uint8(img, 32).permute(0, 2, 3, 1).numpy())        # scored at CIFAR-10's resolution
    return np.concatenate(out), labels


def steps_for_nfe(family, nfe: int) -> int:
    """Sampler steps with ``nfe`` network evaluations: Heun uses two per step but the last."""
    return (nfe + 1) // 2 if family.ode_solver == "heun" and not hasattr(family, "sampler_times") else nfe


def own_sampler_name(family, steps: int) -> str:
    """The backbone's own sampler at ``steps`` steps, with its network evaluations (inverse of steps_for_nfe)."""
    if hasattr(family, "sampler_times"):
        return f"multistep consistency sampler, {steps} step{'s' if steps > 1 else ''}"
    nfe = 2 * steps - 1 if family.ode_solver == "heun" else steps
    return f"deterministic ODE ({family.ode_solver}), {steps} steps = {nfe} network evaluations"


def score(imgs: np.ndarray, labels: np.ndarray, a) -> dict:
    from rdpm_gddcm.image_sources import ArrayImages, Source, load_source
    from rdpm_gddcm.proxy_metrics import PROXY_ACC, proxy_metrics
    from rdpm_gddcm.fid_weights import inception_features
    from rdpm_gddcm.metrics import frechet_distance, gaussian_stats
    ref = np.load(a.fid_reference).astype(np.float64)
    t0 = time.time()
    f = inception_features(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()).numpy()
    secs = (time.time() - t0) / len(f)
    fid = frechet_distance(*gaussian_stats(f.astype(np.float64)), *gaussian_stats(ref))
    values, _, _ = proxy_metrics(Source(path="<pilot>", kind="npz-images", dataset=ArrayImages(imgs)),
                                 load_source(str(DATA / "val"), "reference"), a.classifier, labels=labels)
    return {"fid": float(fid), "fid_reference": f"CIFAR-10 val ({len(ref):,} images)", "class_accuracy":
            values.get(PROXY_ACC), "inception_s_per_image": secs}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pilot", action="append", choices=sorted(PILOTS), required=True, help="repeatable")
    p.add_argument("--minutes", type=float, default=15.0,
                   help="training CPU time of each pilot (process CPU minutes: equal compute on a shared machine)")
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "pilots"))
    p.add_argument("--num-images", type=int, default=1000, help="samples per FID")
    p.add_argument("--nfe", type=int, default=35, help="network evaluations of the pilots' own sampler (per CFG half)")
    p.add_argument("--cfg-scale", type=float, default=2.0)
    p.add_argument("--fid-reference", default=str(ROOT / "runs" / "fid-features" / "val-000000-005000.npy"))
    p.add_argument("--classifier", default=str(ROOT / "assets" / "cifar10-classifier"))
    p.add_argument("--out", required=True)
    a = p.parse_args()
    from rdpm_gddcm.autoencoders import load_autoencoder
    from rdpm_gddcm.backbones import load_network_backbone
    out = Path(a.out)
    for name in a.pilot:
        res = json.loads(out.read_text()) if out.exists() else {"pilots": []}
        if any(r["pilot"] == name for r in res["pilots"]):
            continue
        export = train_pilot(name, a)
        rd = Path(a.runs_dir) / name
        bb = load_network_backbone(export)
        ae = load_autoencoder(bb.meta["autoencoder_spec"])
        conf = json.loads((rd / "config.json").read_text())
        t0 = time.time()
        steps = steps_for_nfe(bb.family, a.nfe)
        imgs, labels = sample_own(bb, ae, a.num_images, steps, a.cfg_scale, seed=0)
        sample_s = (time.time() - t0) / len(imgs)
        row = {"pilot": name, "flags": PILOTS[name].replace(str(TAEF2), "../shared/weights/taef2"),
               "family": bb.family.name, "model": conf["model"], "parameters": conf["resolved"]["parameters"],
               "precision": conf["resolved"]["precision"]["mode"], "minutes": a.minutes,
               "steps_trained": bb.meta["steps"], "images_seen": bb.meta["images_seen"], **throughput(rd),
               "heldout_loss": heldout_loss(bb, ae, conf["image_size"]),
               "sampler": f"ODE ({bb.family.ode_solver}), {steps} steps = {a.nfe} NFE, CFG {a.cfg_scale}",
               "num_samples": len(imgs), "sample_s_per_image": sample_s, **score(imgs, labels, a)}
        res = json.loads(out.read_text()) if out.exists() else {"pilots": []}   # another process may have added rows
        res["pilots"] = [r for r in res["pilots"] if r["pilot"] != name] + [row]
        res.setdefault("commands", [])
        cmd = shlex.join(["python", "benchmarks/bench_backbone_pilots.py", *sys.argv[1:]])
        if cmd not in res["commands"]:
            res["commands"].append(cmd)
        res.update({"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "machine": platform.processor() or platform.machine()})
        tmp = out.with_suffix(f".{os.getpid()}.tmp")            # two pilot processes may share --out
        tmp.write_text(json.dumps(res, indent=2))
        tmp.replace(out)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
