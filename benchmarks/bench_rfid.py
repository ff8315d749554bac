"""rFID of the tokenizer (what tokenizer papers report next to PSNR): FID of reconstructions
against their own originals, with the standard FID Inception (``rdpm_gddcm.fid_weights``).

    python benchmarks/bench_rfid.py --num-images 1000 --out benchmarks/results/rfid.json

The first --num-images images of CIFAR-10 `val` in class-interleaved order (a class-balanced
subset) are reconstructed by each row's method and compared with the Inception features of the
same originals (cached by ``bench_fid_reference.py``, computed here when missing). rFID's floor is
0 (perfect reconstructions); like FID it is biased upward at small counts, so rows compare at
equal counts only. PSNR of the same reconstructions is reported beside it.

Rows: the generator's tokens (VP-ε pixel backbone, N=10, 8x8, K=4096, trajectory p=0.5,
class-conditional ``dot``) and the taef2 autoencoder alone (32 px upsampled to 64, encode, decode,
downsampled back: the round trip of the latent stack).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fid_reference import class_interleaved, load_u8  # noqa: E402
from rdpm_gddcm.fid_weights import inception_features  # noqa: E402
from rdpm_gddcm.metrics import frechet_distance, gaussian_stats, psnr  # noqa: E402


def to_u8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def tokens10(x_u8, labels, batch):
    from rdpm_gddcm.tokenizer import Tokenizer, TokenizerConfig, load_models
    bb, ae, size = load_models(str(ROOT / "assets" / "cifar10-pixels-vp"), None, None, "cpu", "auto")
    cfg = TokenizerConfig(plan="trajectory", p=0.5, num_steps=10, grid="8x8", codebook_size=4096, selection="dot",
                          conditional=True)
    tok = Tokenizer(bb, ae, cfg, size, "cpu")
    out = []
    for i in range(0, len(x_u8), batch):
        x = x_u8[i:i + batch].float() / 127.5 - 1
        out.append(to_u8(tok.encode(x, labels[i:i + batch])[1]))
    return torch.cat(out), {"backbone_precision": bb.precision.to_json(), "bits_per_image": tok.bits_per_image}


def taef2_roundtrip(x_u8, labels, batch, taef2_dir):
    import torch.nn.functional as F

    from rdpm_gddcm.autoencoders import load_autoencoder
    ae = load_autoencoder(f"taef2:{taef2_dir}")
    out = []
    with torch.no_grad():
        for i in range(0, len(x_u8), batch):
            x = x_u8[i:i + batch].float() / 127.5 - 1
            up = F.interpolate(x, size=64, mode="bicubic", align_corners=False).clamp(-1, 1)
            rec = ae.decode(ae.encode(up))
            out.append(to_u8(F.interpolate(rec, size=32, mode="area")))
    return torch.cat(out), {"latent": "32x8x8 at 64 px"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--taef2", default=str(ROOT.parent / "shared" / "weights" / "taef2"))
    p.add_argument("--num-images", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--features", default="runs/fid-features/val-000000-005000.npy",
                   help="cached Inception features of val in class-interleaved order (bench_fid_reference.py)")
    p.add_argument("--out", default="benchmarks/results/rfid.json")
    a = p.parse_args()
    files = class_interleaved(Path(a.data) / "val")[:a.num_images]
    classes = sorted(d.name for d in (Path(a.data) / "val").iterdir() if d.is_dir())
    labels = torch.tensor([classes.index(f.parent.name) for f in files])
    x = load_u8(files)
    if Path(a.features).exists():
        f_orig = np.load(a.features)[:a.num_images]
    else:
        f_orig = inception_features(x).numpy()
    stats_orig = gaussian_stats(f_orig.astype(np.float64))
    rows = []
    for label, fn in (("gDDCM tokens10: VP-ε pixels, N=10, 8x8, K=4096, p=0.5, dot, conditional", tokens10),
                      ("taef2 autoencoder alone (32→64 px round trip)",
                       lambda u, y, b: taef2_roundtrip(u, y, b, a.taef2))):
        t0 = time.time()
        rec, info = fn(x, labels, a.batch)
        secs = time.time() - t0
        f_rec = inception_features(rec).numpy()
        rfid = frechet_distance(*gaussian_stats(f_rec.astype(np.float64)), *stats_orig)
        rows.append({"method": label, "rfid": rfid, "num_images": len(rec),
                     "psnr": float(psnr(x.float() / 127.5 - 1, rec.float() / 127.5 - 1).mean()),
                     "seconds_per_image": secs / len(rec), **info})
        print(f"{label}: rFID-{len(rec)} {rfid:.2f}, PSNR {rows[-1]['psnr']:.2f} dB", flush=True)
    Path(a.out).write_text(json.dumps({"command": "python benchmarks/bench_rfid.py " + " ".join(sys.argv[1:]),
                                       "rows": rows, "reference": "the same val originals"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
