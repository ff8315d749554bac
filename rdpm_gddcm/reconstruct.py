"""``rdpm-reconstruct``: tokenizer fidelity on a dataset (PSNR, SSIM, bits, bpp, time).

Encodes ``--num-images`` images (the first ones in a class-balanced stride order), decodes the
tokens with the decoding path (the chooser is a lookup of the stored indices, as `rdpm-codec
decode` does), and writes ``metrics.json`` + ``reconstructions.png`` (originals above
reconstructions, 8 per row pair). ``--rfid`` adds rFID, what tokenizer papers report next to PSNR:
the Fréchet distance between the standard FID Inception features of the reconstructions and of
their own originals, at the resolution the tokenizer works at (floor 0; biased upward at small
counts like any FID, so compare rows at equal ``--num-images``).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import cli
from .cli import positive_int
from .tokenizer import Tokenizer, add_model_args, add_tokenizer_args, load_models, tokenizer_config_from_args
from .files import write_json_atomic


def parse_args(argv=None):
    p = cli.ArgumentParser(prog="rdpm-reconstruct", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-path", required=True, help="ImageFolder root or procedural[:N]")
    p.add_argument("--num-images", type=positive_int, default=128)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--verify-decode", action="store_true",
                   help="also decode the tokens separately and check the result equals the encoder's reconstruction")
    p.add_argument("--rfid", action="store_true",
                   help="also rFID: FID of the reconstructions against their originals (standard FID Inception, "
                        "installed by the set-up)")
    add_model_args(p)
    add_tokenizer_args(p)
    return p.parse_args(argv)


def run(a) -> dict:
    from .data import balanced_indices, build_dataset, save_image_grid
    from .metrics import psnr, ssim
    torch.manual_seed(0)
    if a.rfid:
        inception_ready(a.num_images)          # before the encode, not after it
    backbone, autoencoder, size = load_models(a.backbone, a.autoencoder, a.image_size, a.device, a.mixed_precision)
    cfg = tokenizer_config_from_args(a)
    tok = Tokenizer(backbone, autoencoder, cfg, size, a.device)
    ds = build_dataset(a.data_path, size)
    if a.num_images > len(ds):
        raise ValueError(f"--num-images {a.num_images} but {a.data_path} holds {len(ds)} images: pass --num-images "
                         f"{len(ds)} or less")
    idx = balanced_indices(len(ds), a.num_images)
    origs, recs = [], []
    t0 = time.time()
    for i in range(0, len(idx), a.batch_size):
        items = [ds[j] for j in idx[i:i + a.batch_size]]
        imgs = torch.stack([im for im, _ in items])
        labels = torch.tensor([y for _, y in items])
        tokens, rec, _ = tok.encode(imgs, labels)
        if a.verify_decode and not torch.equal(tok.decode(tokens, labels), rec):
            raise RuntimeError("decode did not reproduce the encoder's reconstruction bit for bit")
        origs.append(imgs)
        recs.append(rec.cpu())
    secs = time.time() - t0
    o, r = torch.cat(origs), torch.cat(recs)
    per_image = psnr(o, r)
    metrics = {"psnr": float(per_image.mean()), "psnr_std": float(per_image.std()), "ssim": float(ssim(o, r).mean()),
               "bits_per_image": tok.bits_per_image, "bpp": tok.bpp, "seconds_per_image": secs / len(o),
               "num_images": len(o), "tokenizer": asdict(cfg), "plan_resolved": tok.plan.config,
               "backbone": backbone.identity(), "autoencoder": autoencoder.identity(),
               "image_size": size, "data_path": a.data_path, "mixed_precision": a.mixed_precision,
               "precision": backbone.precision.to_json(),
               "torch_threads": torch.get_num_threads()}
    if a.rfid:
        metrics["rfid"] = rfid(o, r)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    k = min(8, len(o))
    save_image_grid(torch.cat([o[:k], r[:k]]), str(out / "reconstructions.png"), nrow=k)
    print((f"rFID-{len(o)} {metrics['rfid']:.2f}  " if a.rfid else "") +
          f"PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}  {metrics['bits_per_image']} bits/image "
          f"({metrics['bpp']:.4f} bpp)  {metrics['seconds_per_image']:.3f} s/image  -> {out / 'metrics.json'}")
    return metrics


def inception_ready(num_images: int) -> None:
    """The standard FID Inception is installed (converted once), else a ValueError naming the fix."""
    from .fid_weights import FidWeightsError, convert
    if num_images < 2:
        raise ValueError("--rfid needs at least 2 images: pass --num-images 2 or more")
    try:
        convert()
    except (FidWeightsError, OSError) as e:
        raise ValueError(f"--rfid: {e}") from None


def rfid(originals: torch.Tensor, reconstructions: torch.Tensor) -> float:
    """FID between the Inception features of reconstructions and of their originals (both in [-1, 1])."""
    import hashlib

    from .fid_weights import inception_features
    from .metrics import frechet_distance_features, to_uint8
    orig = to_uint8(originals.cpu())
    key = hashlib.sha256(orig.numpy().tobytes()).hexdigest()
    if key not in _ORIGINAL_FEATURES:            # one benchmark runs many rows on the same originals
        if len(_ORIGINAL_FEATURES) >= 4:
            _ORIGINAL_FEATURES.pop(next(iter(_ORIGINAL_FEATURES)))
        _ORIGINAL_FEATURES[key] = inception_features(orig)
    return frechet_distance_features(inception_features(to_uint8(reconstructions)), _ORIGINAL_FEATURES[key])


_ORIGINAL_FEATURES: dict = {}


def main(argv=None):
    from .cli import run_command
    a = parse_args(argv)
    return run_command("rdpm-reconstruct", lambda: run(a))


if __name__ == "__main__":
    main()
