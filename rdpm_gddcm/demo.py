"""``make demo``: CIFAR-10 from the shipped models, then the whole pipeline on the built-in
procedural dataset, offline, on a CPU.

Part (a), seconds: a class-conditional CIFAR-10 grid from the shipped generator with its recorded
sampling defaults (assets/cifar10-generator over the latent backbone assets/cifar10-taef2-edm-long,
which needs the taef2 autoencoder weights its backbone.json names; where they are not found, the
pixel-space assets/cifar10-generator-pixels + assets/cifar10-pixels-vp)   -> demo_out/cifar10/grid.png

Part (b), stages (each reuses its finished output when re-run):
  1. train a tiny flow backbone on procedural images     -> demo_out/backbone/
  2. tokenizer fidelity on held-out procedural images     -> demo_out/reconstruct/
  3. tokenize the training images (2D token maps + states) -> demo_out/tokens/
  4. train a tiny RDPM generator on the tokens            -> demo_out/generator/
  5. sample a class-conditional grid                      -> demo_out/samples/grid.png
  6. evaluate: labelled proxy metrics of the samples       -> demo_out/samples/metrics.json

``--size`` picks the budget: ``small`` (the default, a few minutes) or ``tiny`` (the test).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from .precision import CHOICES, HELP as PRECISION_HELP

SIZES = {
    # images, image px, backbone steps, tokenize images, gen steps, samples
    "tiny": dict(images=64, px=16, bb_steps=30, tok_images=32, gen_steps=40, samples=8, model="unet-tiny", gen="gen-tiny"),
    "small": dict(images=2000, px=16, bb_steps=600, tok_images=1000, gen_steps=600, samples=40, model="unet-tiny",
                  gen="gen-tiny"),
}


def stage(name: str, done: Path, fn, log: list):
    t0 = time.time()
    if done.exists():
        print(f"[demo] {name}: reusing {done.parent}")
        log.append({"stage": name, "reused": True})
        return
    print(f"[demo] {name} ...")
    fn()
    log.append({"stage": name, "seconds": round(time.time() - t0, 1)})


def command(module: str, args: list):
    """Run one stage as its own process, exactly like the command a user would type
    (accelerate's state is per process, and each stage picks its own precision)."""
    r = subprocess.run([sys.executable, "-m", f"rdpm_gddcm.{module}", *args])
    if r.returncode != 0:
        raise SystemExit(f"[demo] stage `python -m rdpm_gddcm.{module}` failed (exit {r.returncode}); "
                         "fix the error above and re-run: finished stages are reused")


ASSETS = Path(__file__).resolve().parents[1] / "assets"


def shipped_generator() -> Path:
    """assets/cifar10-generator where the autoencoder its backbone names can be found here, else the
    pixel-space assets/cifar10-generator-pixels (no autoencoder weights needed)."""
    from .sample import resolve_recorded_path
    latent, pixels = ASSETS / "cifar10-generator", ASSETS / "cifar10-generator-pixels"
    for d in (latent, pixels):
        if not (d / "generator.json").exists():
            raise SystemExit(f"[demo] no shipped generator at {d}: this checkout is incomplete; run with "
                             "--no-shipped to skip part (a)")
    bb = Path(resolve_recorded_path(json.loads((latent / "generator.json").read_text())["backbone"], latent))
    spec = json.loads((bb / "backbone.json").read_text()).get("autoencoder_spec") or "pixels"
    kind, _, where = spec.partition(":")
    if kind == "pixels" or Path(where).expanduser().exists():
        return latent
    print(f"[demo] part (a): {latent.name} needs the {kind} weights its backbone names ({spec}), not found here; "
          f"sampling the pixel-space {pixels.name} instead")
    return pixels


def run(out: Path, size: str = "small", seed: int = 0, shipped: bool = True, precision: str = "auto") -> dict:
    c = SIZES[size]
    out.mkdir(parents=True, exist_ok=True)
    log: list = []
    t0 = time.time()
    cifar = out / "cifar10"
    mp = ["--mixed-precision", precision]
    if shipped:
        # (a) the shipped CIFAR-10 generator: 2 images per class, its recorded CFG/temperature, 10 steps
        gen_dir = shipped_generator()
        stage(f"a: CIFAR-10 from the shipped generator ({gen_dir.name})", cifar / "samples.npz", lambda: command(
            "sample", ["--ckpt", str(gen_dir), "--num-samples", "20", "--sample-dir", str(cifar),
                       "--global-seed", str(seed), *mp]), log)
    data = f"procedural:{c['images']}"
    bb, rec, tok, gen, smp = (out / n for n in ("backbone", "reconstruct", "tokens", "generator", "samples"))
    tokflags = ["--plan", "trajectory", "--p", "0.5", "--num-steps", "6", "--grid", "4x4", "--codebook-size", "256", *mp]
    stage("1/6 train backbone", bb / "backbone.json", lambda: command("train_backbone", [
        "--data-path", data, "--image-size", str(c["px"]), "--family", "flow", "--model", c["model"],
        "--results-dir", str(bb), "--max-steps", str(c["bb_steps"]), "--global-batch-size", "32", "--lr", "1e-3",
        "--warmup-steps", "20", *mp, "--ckpt-every", str(c["bb_steps"]), "--sample-every", "0",
        "--sample-steps", "20", "--log-every", "50", "--global-seed", str(seed)]), log)
    stage("2/6 tokenizer fidelity", rec / "metrics.json", lambda: command("reconstruct", [
        "--data-path", f"procedural:{c['images'] + 64}", "--backbone", str(bb), "--num-images", "16",
        "--out", str(rec), *tokflags]), log)
    stage("3/6 tokenize", tok / "manifest.json", lambda: command("tokenize", [
        "--data-path", data, "--num-images", str(c["tok_images"]), "--backbone", str(bb), "--out", str(tok),
        "--save-states", "--shard-size", "512", *tokflags]), log)
    stage("4/6 train generator", gen / "generator.json", lambda: command("train_generator", [
        "--tokens", str(tok), "--results-dir", str(gen), "--model", c["gen"], "--max-steps", str(c["gen_steps"]),
        "--global-batch-size", "64", "--lr", "2e-3", "--warmup-steps", "20", "--log-every", "50",
        "--ckpt-every", str(c["gen_steps"]), "--backbone", str(bb), "--global-seed", str(seed), *mp]), log)
    stage("5/6 sample", smp / "samples.npz", lambda: command("sample", [
        "--ckpt", str(gen), "--num-samples", str(c["samples"]), "--cfg-scale", "2.0", "--temperature", "1.0",
        "--sample-dir", str(smp), "--global-seed", str(seed), *mp]), log)
    ref = out / "reference"

    def _eval():
        from .data import ProceduralDataset, save_images
        ds = ProceduralDataset(200, c["px"], seed=seed + 1)
        ref.mkdir(exist_ok=True)
        save_images(torch.stack([ds[i][0] for i in range(len(ds))]), [str(ref / f"{i:04d}.png") for i in range(len(ds))])
        clf = Path(__file__).resolve().parents[1] / "assets" / "cifar10-classifier"
        # the proxy classifier knows CIFAR-10 classes, not procedural ones: evaluate the samples
        # without their labels (Fréchet distance only; class accuracy does not apply here)
        import numpy as np
        np.savez(smp / "samples_unlabelled.npz", arr_0=np.load(smp / "samples.npz")["arr_0"])
        from .fid_weights import torchscript_path
        # FID when the standard Inception is installed (make demo installs it); at this sample count
        # it only shows the pipeline works: FID is biased far upward with few images
        args = ["--samples", str(smp / "samples_unlabelled.npz"), "--reference", str(ref), "--out", str(smp),
                "--metrics", "fid" if torchscript_path() is not None else "none"]
        if clf.exists():
            args += ["--proxy-classifier", str(clf)]
        command("evaluate", args)
    stage("6/6 evaluate", smp / "metrics.json", _eval, log)
    fid = None
    if (smp / "metrics.json").exists():
        value = json.loads((smp / "metrics.json").read_text()).get("metrics", {}).get("fid")
        if value is not None:
            fid = {"value": value, "num_samples": c["samples"], "num_reference": 200,
                   "label": f"FID-{c['samples']} against 200 procedural reference images (standard Inception; "
                            "at so few images FID is biased far upward: a pipeline check, not a quality claim)"}
    summary = {"size": size, "seconds": round(time.time() - t0, 1), "stages": log, "fid": fid,
               "outputs": {**({"cifar10_grid": str(cifar / "grid.png")} if shipped else {}),
                           "backbone_samples": sorted(str(p) for p in (bb / "samples").glob("*.png")),
                           "reconstructions": str(rec / "reconstructions.png"), "reconstruction_metrics": str(rec / "metrics.json"),
                           "sample_grid": str(smp / "grid.png"), "sample_metrics": str(smp / "metrics.json")}}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="rdpm-demo", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="demo_out")
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixed-precision", default="auto", choices=CHOICES, help=PRECISION_HELP + " (every stage)")
    p.add_argument("--no-shipped", dest="shipped", action="store_false",
                   help="skip part (a), sampling CIFAR-10 from the shipped generator")
    a = p.parse_args(argv)
    s = run(Path(a.out), a.size, a.seed, a.shipped, a.mixed_precision)
    if s["fid"]:
        print(f"\n[demo] {s['fid']['label']}: {s['fid']['value']:.1f}")
    print(f"\n[demo] done in {s['seconds']:.0f} s. Wrote:")
    for k, v in s["outputs"].items():
        for path in (v if isinstance(v, list) else [v]):
            print(f"  {k:24s} {path}")


if __name__ == "__main__":
    main()
