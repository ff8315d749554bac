"""taef2 reconstruction quality and speed on CIFAR-10 val (the protocol of
``../shared/weights/taef2/README.md``; DESIGN "Three swappable parts").

For each input size S in {32, 64, 128}: 32 px image -> bicubic upsample to S -> taef2 encode ->
decode -> area downsample back to 32 -> PSNR against the original in uint8 at 32 px (mean of
per-image PSNR; the PSNR of the mean MSE is reported too). Also: the resampling-only PSNR (no
autoencoder: the ceiling the protocol allows), the std of the raw latents (which decides
``TAE_SCALING_FACTORS`` in rdpm_gddcm/autoencoders.py) and encode/decode milliseconds per image
on this CPU.

    python benchmarks/bench_autoencoder.py --data-path ../shared/data/cifar10/val \
        --taef2 ../shared/weights/taef2 --num-images 500 --out benchmarks/results/autoencoder.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from rdpm_gddcm.autoencoders import load_autoencoder
from rdpm_gddcm.data import ImageFolderDataset

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("RDPM_SHARED", os.path.normpath(os.path.join(HERE, "..", "..", "shared")))


def psnr_uint8(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of two [-1,1] batches after quantising both to uint8."""
    q = lambda t: ((t + 1) * 127.5).round().clamp(0, 255)  # noqa: E731
    mse = ((q(a) - q(b)) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10)), mse


def file_sha256(path: str) -> str:
    """To compare with the hashes listed in the weights' README."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-path", default=os.path.join(SHARED, "data", "cifar10", "val"),
                   help="ImageFolder tree of 32 px images (CIFAR-10 val)")
    p.add_argument("--taef2", default=os.path.join(SHARED, "weights", "taef2"),
                   help="directory with taef2_encoder.pth / taef2_decoder.pth")
    p.add_argument("--num-images", type=int, default=500,
                   help="images, spread evenly over the (class-sorted) dataset")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128],
                   help="input sizes the 32 px images are upsampled to")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", default=os.path.join(HERE, "results", "autoencoder.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()

    ae = load_autoencoder(f"taef2:{args.taef2}")
    ds = ImageFolderDataset(args.data_path, 32)
    n = min(args.num_images, len(ds))
    idx = [i * len(ds) // n for i in range(n)]  # class-balanced: samples are sorted by class
    x32 = torch.stack([ds[i][0] for i in idx])

    ae.decode(ae.encode(x32[:2].repeat(1, 1, 2, 2)))  # warm-up (allocator, kernels)
    results = {}
    for size in args.sizes:
        psnrs, mses, ceil, enc_s, dec_s = [], [], [], 0.0, 0.0
        s1 = s2 = 0.0
        count = 0
        for b in x32.split(args.batch_size):
            up = b if size == 32 else F.interpolate(b, size=size, mode="bicubic",
                                                    align_corners=False).clamp(-1, 1)
            t0 = time.perf_counter()
            z = ae.encode(up)
            t1 = time.perf_counter()
            rec = ae.decode(z)
            t2 = time.perf_counter()
            enc_s, dec_s = enc_s + t1 - t0, dec_s + t2 - t1
            s1, s2, count = s1 + z.double().sum().item(), s2 + (z.double() ** 2).sum().item(), \
                count + z.numel()
            down = rec if size == 32 else F.interpolate(rec, size=32, mode="area")
            pi, mi = psnr_uint8(down, b)
            psnrs.append(pi)
            mses.append(mi)
            if size != 32:
                ceil.append(psnr_uint8(F.interpolate(up, size=32, mode="area"), b)[0])
        psnr, mse = torch.cat(psnrs), torch.cat(mses)
        mean = s1 / count
        results[str(size)] = {
            "latent_shape": list(z.shape[1:]),
            "psnr_db": round(psnr.mean().item(), 3),
            "psnr_db_of_mean_mse": round((10 * torch.log10(255.0 ** 2 / mse.mean())).item(), 3),
            "psnr_db_std_over_images": round(psnr.std().item(), 3),
            "resample_only_psnr_db": round(torch.cat(ceil).mean().item(), 3) if ceil else None,
            "latent_mean": round(mean, 4),
            "latent_std": round((s2 / count - mean ** 2) ** 0.5, 4),
            "encode_ms_per_image": round(1000 * enc_s / n, 2),
            "decode_ms_per_image": round(1000 * dec_s / n, 2),
        }
        print(f"{size:4d} px: PSNR {results[str(size)]['psnr_db']:.2f} dB, latent std "
              f"{results[str(size)]['latent_std']:.3f}, encode "
              f"{results[str(size)]['encode_ms_per_image']:.1f} ms/img, decode "
              f"{results[str(size)]['decode_ms_per_image']:.1f} ms/img", flush=True)

    report = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "protocol": "CIFAR-10 val 32px -> bicubic upsample to S -> taef2 encode/decode -> area "
                    "downsample to 32 -> PSNR in uint8 at 32 px (mean of per-image PSNR)",
        "autoencoder": ae.identity(),
        "weight_files_sha256": {f: file_sha256(os.path.join(args.taef2, f))
                                for f in ("taef2_encoder.pth", "taef2_decoder.pth")},
        "data_path": os.path.normpath(args.data_path),
        "num_images": n,
        "results_by_input_size": results,
        "reference_psnr_db": {"32": 24.1, "64": 32.3, "128": 36.1},
        "wall_seconds": round(time.time() - t_start, 1),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, args.out)  # no half-written JSON (DESIGN "Errors")
    print(f"wrote {args.out} ({report['wall_seconds']} s)")
    return report


if __name__ == "__main__":
    main()
