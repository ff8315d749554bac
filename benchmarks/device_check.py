"""The device check: what a CUDA machine does with this library, in one JSON, in a few minutes.

    bash benchmarks/device_check.sh                     # on a machine with a CUDA GPU ($OUT or .)
    python benchmarks/device_check.py --dry-run --out /tmp/dc.json   # tiny shapes on the CPU

Sections (each records its own error instead of stopping the rest; the run stops starting new
sections once --budget-s is spent):
- ``env``: torch/CUDA versions, the device, bf16 support, what ``--mixed-precision auto`` picks;
- ``gpu_tests``: the ``gpu``-marked tests (``pytest -m gpu``), their summary line;
- ``codebook_identity``: SHA-256 of codebooks built for the device vs on the CPU;
- ``token_identity``: the shipped VP backbone (fp32) encodes the same images on the CPU and on the
  device (N=10, 8x8 grid, K=4096, ``dot``): the fraction of equal tokens, and the PSNR between the
  CPU decode and a device decode of the CPU's tokens (kernels differ in the last bits, so equality
  is measured, not assumed);
- ``cifar_throughput``: encode, decode and generator sampling images/s at CIFAR shapes (shipped
  assets, auto precision);
- ``imagenet_throughput``: per-image costs at ImageNet-256 shapes with random-init DiT-XL/2 and the
  SD-VAE (diffusers configs, bf16 where supported): backbone call, VAE encode/decode, a 10-step
  encode estimate;
- ``train_throughput``: training images/s of the backbone U-Net (unet-cpu, 32 px) and sequences/s
  of the generator (gen-mini at the shipped token shape).
``--dry-run`` runs every section on the CPU with tiny shapes and one repeat: it checks the script,
not the numbers.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> float:
    """Median seconds of ``fn`` after one warm-up."""
    fn()
    sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def images(n: int, size: int) -> torch.Tensor:
    from rdpm_gddcm.data import ProceduralDataset
    ds = ProceduralDataset(n, size, seed=7)
    return torch.stack([ds[i][0] for i in range(n)])


# ------------------------------------------------------------------------------------------ sections
def s_env(a) -> dict:
    from rdpm_gddcm.precision import resolve_precision
    d = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": a.device,
         "auto_precision": resolve_precision("auto", a.device).to_json()}
    if a.device.startswith("cuda"):
        d.update(name=torch.cuda.get_device_name(), capability=list(torch.cuda.get_device_capability()),
                 bf16_supported=torch.cuda.is_bf16_supported(),
                 memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1))
    return d


def s_gpu_tests(a) -> dict:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip()]
    return {"exit_code": r.returncode, "summary": lines[-1] if lines else "", "tail": r.stdout[-1500:]}


def s_codebook_identity(a) -> dict:
    from rdpm_gddcm.codebooks import VirtualCodebook
    rows = []
    for seed, dim, n, K in ((0, 3 * 32 * 32, 3, 4096), (1, 4 * 32 * 32, 0, 1024), (2, 30, 7, 100)):
        if a.dry_run:
            K = min(K, 256)
        cb_cpu, cb_dev = VirtualCodebook(seed=seed, dim=dim), VirtualCodebook(seed=seed, dim=dim)
        c, d = cb_cpu.entries(n, K, "cpu"), cb_dev.entries(n, K, a.device)
        rows.append({"seed": seed, "dim": dim, "step": n, "K": K, "sha256_cpu": sha(c), "sha256_device": sha(d),
                     "identical": sha(c) == sha(d)})
    return {"rows": rows, "all_identical": all(r["identical"] for r in rows)}


def _tokenizer(device, precision="no"):
    from rdpm_gddcm.tokenizer import Tokenizer, TokenizerConfig, load_models
    bb, ae, size = load_models(str(ROOT / "assets" / "cifar10-pixels-vp"), None, None, device, precision)
    cfg = TokenizerConfig(plan="trajectory", p=0.5, num_steps=10, grid="8x8", codebook_size=4096, selection="dot",
                          conditional=True)
    return Tokenizer(bb, ae, cfg, size, device)


def s_token_identity(a) -> dict:
    from rdpm_gddcm.metrics import psnr
    n = 4 if a.dry_run else 64
    x, y = images(n, 32), torch.arange(n) % 10
    cpu, dev = _tokenizer("cpu"), _tokenizer(a.device)
    tok_c, rec_c, _ = cpu.encode(x, y)
    tok_d, rec_d, _ = dev.encode(x.to(a.device), y.to(a.device))
    dec_d = dev.decode(tok_c.to(a.device), y.to(a.device)).cpu()
    return {"images": n, "fraction_equal_tokens": float((tok_c.cpu() == tok_d.cpu()).float().mean()),
            "images_with_all_tokens_equal": int((tok_c.cpu() == tok_d.cpu()).flatten(1).all(1).sum()),
            "psnr_cpu_decode_vs_device_decode_db": float(psnr(rec_c.cpu(), dec_d).mean()),
            "psnr_recon_cpu_db": float(psnr(x, rec_c.cpu()).mean()),
            "psnr_recon_device_db": float(psnr(x, rec_d.cpu()).mean())}


def s_cifar_throughput(a) -> dict:
    from rdpm_gddcm.sample import Sampler
    n = 4 if a.dry_run else 256
    tok = _tokenizer(a.device, "auto")
    x, y = images(n, 32).to(a.device), (torch.arange(n) % 10).to(a.device)
    tokens = tok.encode(x, y)[0]
    out = {"batch": n, "backbone_precision": tok.backbone.precision.to_json()}
    out["encode_img_per_s"] = n / timed(lambda: tok.encode(x, y), a.device, a.repeats)
    out["decode_img_per_s"] = n / timed(lambda: tok.decode(tokens, y), a.device, a.repeats)
    s = Sampler(str(ROOT / "assets" / "cifar10-generator-pixels"), device=a.device, mixed_precision="auto")
    idx = torch.arange(n)
    out["sample_img_per_s"] = n / timed(lambda: s.sample(idx, (idx % 10).numpy(), cfg_scale=2.0), a.device, a.repeats)
    out["sampler_precision"] = {"backbone": s.backbone_precision.mode, "generator": s.generator_precision.mode}
    return out


def s_imagenet_throughput(a) -> dict:
    from diffusers import AutoencoderKL, DiTTransformer2DModel

    from bench_imagenet_costs import DIT_XL2_256, SD_VAE
    from rdpm_gddcm.precision import resolve_precision
    dit_cfg, vae_cfg, n, size = dict(DIT_XL2_256), dict(SD_VAE), 32, 256
    if a.dry_run:
        dit_cfg.update(num_layers=1, num_attention_heads=2, attention_head_dim=8)
        vae_cfg.update(block_out_channels=[32, 32, 32, 32], norm_num_groups=8)
        n, size = 2, 64
    prec = resolve_precision("auto", a.device)
    torch.manual_seed(0)
    dit = DiTTransformer2DModel(**dit_cfg).to(a.device).eval().requires_grad_(False)
    vae = AutoencoderKL(**vae_cfg).to(a.device).eval().requires_grad_(False)
    lat = size // 8
    z = torch.randn(n, 4, lat, lat, device=a.device)
    t = torch.full((n,), 500, device=a.device)
    y = torch.randint(0, 1000, (n,), device=a.device)
    img = torch.rand(n, 3, size, size, device=a.device) * 2 - 1
    ac = torch.autocast(torch.device(a.device).type, dtype=prec.dtype or torch.float32, enabled=prec.dtype is not None)
    with torch.no_grad():
        def call():
            with ac:
                dit(z, timestep=t, class_labels=y).sample.float()
        s_dit = timed(call, a.device, a.repeats) / n
        s_enc = timed(lambda: vae.encode(img).latent_dist.mode(), a.device, a.repeats) / n
        s_dec = timed(lambda: vae.decode(z).sample, a.device, a.repeats) / n
    return {"batch": n, "image_size": size, "precision": prec.to_json(), "dit_s_per_image_per_step": s_dit,
            "vae_encode_s_per_image": s_enc, "vae_decode_s_per_image": s_dec,
            "encode_10_steps_s_per_image_estimate": s_enc + 10 * s_dit,
            "note": "random weights, published configs (dry run: tiny configs); the estimate is VAE encode + 10 "
                    "backbone calls, without the chain's codebook work"}


def s_train_throughput(a) -> dict:
    from rdpm_gddcm.generator import GeneratorConfig, TokenGenerator
    from rdpm_gddcm.networks import build_unet
    from rdpm_gddcm.precision import resolve_precision
    from rdpm_gddcm.generator import load_generator
    prec = resolve_precision("auto", a.device)
    dt = prec.dtype
    B = 8 if a.dry_run else 256
    ac = lambda: torch.autocast(torch.device(a.device).type, dtype=dt or torch.float32, enabled=dt is not None)  # noqa: E731
    net = build_unet("unet-tiny" if a.dry_run else "unet-cpu", in_channels=3, image_size=32, num_classes=10).to(a.device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x, tt, y = torch.randn(B, 3, 32, 32, device=a.device), torch.rand(B, device=a.device) * 999, \
        torch.randint(0, 10, (B,), device=a.device)

    def bb_step():
        with ac():
            loss = (net(x, tt, y).float() - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out = {"precision": prec.to_json(), "backbone_batch": B,
           "backbone_train_img_per_s": B / timed(bb_step, a.device, a.repeats)}
    shipped, _ = load_generator(str(ROOT / "assets" / "cifar10-generator-pixels"), "cpu")
    g = TokenGenerator(GeneratorConfig(**{**shipped.cfg.to_json(), **({"depth": 1} if a.dry_run else {})}))
    g = g.to(a.device)
    gopt = torch.optim.AdamW(g.parameters(), lr=1e-4)
    c = g.cfg
    sb = torch.randn(B, c.num_blocks, c.block_dim, device=a.device)
    row = torch.randint(0, c.num_rows, (B,), device=a.device)
    cb = torch.randn(c.codebook_size, c.num_blocks, c.block_dim, device=a.device)
    tgt = torch.randint(0, c.codebook_size, (B, c.num_blocks), device=a.device)

    def gen_step():
        with ac():
            logits = g.head_logits(g(sb, sb, row, y), cb)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tgt.flatten())
        gopt.zero_grad(set_to_none=True)
        loss.backward()
        gopt.step()
    out["generator_batch"] = B
    out["generator_train_seq_per_s"] = B / timed(gen_step, a.device, a.repeats)
    out["note"] = "generator: one token map per sequence, a shared codebook row (the trainer draws one row per example)"
    return out


SECTIONS = {"env": s_env, "gpu_tests": s_gpu_tests, "codebook_identity": s_codebook_identity,
            "token_identity": s_token_identity, "cifar_throughput": s_cifar_throughput,
            "imagenet_throughput": s_imagenet_throughput, "train_throughput": s_train_throughput}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="device_check.json")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, one repeat: checks the script only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=420, help="start no new section after this many seconds")
    p.add_argument("--sections", default=",".join(SECTIONS))
    a = p.parse_args(argv)
    if a.dry_run:
        a.device, a.repeats = "cpu", 1
    elif not a.device.startswith("cuda"):
        raise SystemExit("error: no CUDA device here; run with --dry-run to check the script on the CPU")
    t0 = time.time()
    res = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "dry_run": a.dry_run, "sections": {}}
    for name in a.sections.split(","):
        if time.time() - t0 > a.budget_s:
            res["sections"][name] = {"skipped": f"time budget {a.budget_s:.0f} s spent"}
            continue
        s0 = time.time()
        try:
            res["sections"][name] = SECTIONS[name](a)
        except Exception as e:                                  # record and go on: one JSON either way
            res["sections"][name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
        res["sections"][name]["seconds"] = round(time.time() - s0, 2)
        print(f"[device-check] {name}: {time.time() - s0:.1f} s", flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")     # partial results survive a kill
    res["seconds"] = round(time.time() - t0, 1)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"[device-check] wrote {a.out} in {res['seconds']} s")


if __name__ == "__main__":
    main()
