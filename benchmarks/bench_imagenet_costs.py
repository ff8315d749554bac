"""Per-image costs of the ImageNet-256 recipe (train/imagenet.sh, sample/imagenet.sh), measured on
this CPU, and the totals computed from them.

    python benchmarks/bench_imagenet_costs.py --out benchmarks/results/imagenet_costs.json

Why: the recipe has to state token-cache sizes and throughput without guessing. Nothing can be
downloaded here, so the real ImageNet modules are built by hand with *random* weights and the
published configurations (diffusers ``DiTTransformer2DModel`` = DiT-XL/2 at 256 px, latent
4x32x32; ``AutoencoderKL`` = the SD VAE, stabilityai/sd-vae-ft-ema; the project's generator at
the recipe's grid and K). Cost does not depend on the weights' values, so the timings hold for
the pretrained models too.

MEASURED (``--threads`` threads, one warm-up, then ``--repeats`` timed runs, median):
  backbone forward per image per step (fp32 and bf16 autocast); VAE encode/decode per image
  (fp32: the library runs autoencoders in fp32); generator forward per image per token map
  (tied head included; two per token map with CFG) and training forward+backward per sequence (the trainer's
  ``generator_loss``) plus the AdamW step; the chain's own work per image (codebook selection,
  state updates: ``run_chain`` around a free stand-in backbone); the sampler's CPU Gumbel noise
  per image per token map; JPEG load+resize and PNG write per image.
  Each timing has CPU time (``time.process_time``: what the process itself spent, robust to other
  jobs taking the core away) and wall time; the totals use CPU time. FLOPs come from
  ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no compute); it counts
  matmuls, convolutions and attention (math backend), not elementwise work.
COMPUTED (labelled so in the JSON, with the formula): per-image tokenize and sampling costs,
  CPU core-hours for the dataset and for FID-50K, token-cache sizes exactly from the shard format
  (``.npy`` headers included), and GPU hours from FLOPs under a stated utilisation assumption -
  never measured here (no GPU).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdpm_gddcm.backbones import Backbone  # noqa: E402
from rdpm_gddcm.chain import ChainSpec, EncodeChooser, run_chain  # noqa: E402
from rdpm_gddcm.codebooks import INIT_STEP, Grid, VirtualCodebook  # noqa: E402
from rdpm_gddcm.families import Family, ddpm_alphas_cumprod  # noqa: E402
from rdpm_gddcm.generator import build_generator, count_params  # noqa: E402
from rdpm_gddcm.plans import build_plan  # noqa: E402
from rdpm_gddcm.token_io import token_dtype  # noqa: E402
from rdpm_gddcm.tokenizer import TokenizerConfig  # noqa: E402
from rdpm_gddcm.train_generator import generator_loss  # noqa: E402

IMAGENET_TRAIN_IMAGES = 1_281_167      # ILSVRC-2012 train split
LATENT = (4, 32, 32)                    # SD-VAE latent of a 256 px image
NUM_CLASSES = 1000
# diffusers DiTTransformer2DModel config of facebook/DiT-XL-2-256 (transformer/config.json)
DIT_XL2_256 = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
                   sample_size=32, patch_size=2, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                   norm_type="ada_norm_zero", norm_elementwise_affine=False, norm_eps=1e-5, attention_bias=True)
# diffusers AutoencoderKL config of stabilityai/sd-vae-ft-ema (= the vae/ of facebook/DiT-XL-2-256)
SD_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
              up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
              act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=256, scaling_factor=0.18215)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/imagenet_costs.json")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared: keep 1)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up")
    p.add_argument("--backbone-precisions", default="fp32,bf16", help="backbone precisions to time")
    p.add_argument("--generator-precisions", default="fp32",
                   help="generator precisions to time, sampling and training (bf16 matmuls are emulated on this "
                        "CPU, slower than fp32: see the backbone rows)")
    p.add_argument("--model", default="gen-l", help="the generator of train/imagenet.sh (timed)")
    p.add_argument("--flop-models", default="gen-b,gen-l", help="generator sizes whose FLOPs are counted")
    p.add_argument("--grid", default="16x16", help="token grid of the recipe (one block = one DiT-XL/2 patch)")
    p.add_argument("--alt-grids", default="8x8", help="other grids whose cache sizes and FLOPs are also computed")
    p.add_argument("--codebook-size", type=int, default=4096, help="K of the recipe")
    p.add_argument("--num-steps", type=int, default=10, help="N of the recipe (trajectory plan, p=0.5)")
    p.add_argument("--num-images", type=int, default=IMAGENET_TRAIN_IMAGES, help="images to tokenize")
    p.add_argument("--num-samples", type=int, default=50_000, help="samples for FID")
    p.add_argument("--shard-size", type=int, default=1024, help="rdpm-tokenize --shard-size of the recipe")
    p.add_argument("--global-batch-size", type=int, default=256, help="generator training batch of the recipe")
    p.add_argument("--max-steps", type=int, default=400_000, help="generator training steps of the recipe")
    p.add_argument("--chain-batch", type=int, default=64,
                   help="images per chain run (= the recipe's rdpm-tokenize --batch-size: the chain re-lays the "
                        "codebook out per block once per step and batch, whatever the batch size)")
    p.add_argument("--chain-repeats", type=int, default=1, help="timed chain runs after one warm-up")
    p.add_argument("--gpu-peak-tflops", type=float, default=989.0,
                   help="ASSUMPTION for the FLOPs-derived GPU figures: H100 SXM dense bf16 peak")
    p.add_argument("--gpu-utilization", type=float, default=0.4,
                   help="ASSUMPTION: fraction of that peak reached (model FLOPs utilisation)")
    p.add_argument("--num-gpus", type=int, default=8, help="GPUs (processes) of the recipe's accelerate launch")
    p.add_argument("--decode-workers", type=int, default=4,
                   help="rdpm-tokenize --num-workers of the recipe (JPEG-decoding workers per process)")
    p.add_argument("--rederive", action="store_true",
                   help="measure nothing: recompute cache sizes and totals from the measurements already in --out")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------ helpers
def timed(fn, repeats: int, per: int = 1) -> dict:
    """One warm-up, then ``repeats`` timed runs; ms per item (``per`` items per run), CPU and wall,
    with the load average (other jobs on the cores) at the end."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_ms": round(1000 * statistics.median(cpu) / per, 2),
            "wall_ms": round(1000 * statistics.median(wall) / per, 2), "per": per,
            "cpu_runs_s": [round(v, 3) for v in cpu], "wall_runs_s": [round(v, 3) for v in wall],
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def count_flops(fn) -> int:
    """Matmul/conv/attention FLOPs of ``fn`` (math SDPA, so attention is counted as its bmm's)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def report(what: str, t: dict):
    print(f"{what}: {t['cpu_ms']} ms CPU, {t['wall_ms']} ms wall (load {t['loadavg_1m']})", flush=True)


def dit_family() -> Family:
    """facebook/DiT-XL-2-256's scheduler: DDPM linear betas 1e-4..0.02 over 1000 steps."""
    return Family("vp-discrete", alphas_cumprod=ddpm_alphas_cumprod(1000, 1e-4, 0.02, "linear"))


class FreeBackbone(Backbone):
    """A stand-in that costs (almost) nothing, so timing run_chain with it isolates the chain's own
    work: codebook selection, block assembly and the state update."""

    def __init__(self, family):
        super().__init__()
        self.family, self.latent_shape = family, LATENT

    def _predict(self, x_t, t, y):
        return 0.5 * x_t, x_t


class CodebookRows:
    """The one method ``generator_loss`` needs from ``train_generator.RowBatcher``: a token row's
    codebook restricted to each block, (K, G, Db)."""

    def __init__(self, grid: Grid, K: int):
        self.grid, self.K = grid, K
        self.codebook = VirtualCodebook(0, int(np.prod(grid.latent_shape)))

    def codebook_blocks(self, row: int, device):
        n = INIT_STEP if row == 0 else row - 1                          # row 0 = the init token map
        return self.grid.entries_to_blocks(self.codebook.entries(n, self.K, device))


# ------------------------------------------------------------------------------------------ measured
def bench_backbone(precisions, repeats) -> dict:
    from diffusers import DiTTransformer2DModel
    with torch.device("meta"):
        meta = DiTTransformer2DModel(**DIT_XL2_256)
    x, t, y = torch.randn(1, *LATENT), torch.tensor([500]), torch.tensor([1])
    out = {"model": "diffusers DiTTransformer2DModel, DiT-XL/2 256 config (random weights)",
           "parameters": count_params(meta),
           "flops_per_call": count_flops(lambda: meta(x.to("meta"), timestep=t.to("meta"), class_labels=y.to("meta")))}
    del meta
    torch.manual_seed(0)
    dit = DiTTransformer2DModel(**DIT_XL2_256).eval().requires_grad_(False)
    for prec in precisions:
        def call():
            with torch.no_grad(), autocast(prec):     # what DiffusersDiTBackbone._predict runs
                dit(x, timestep=t, class_labels=y).sample.float()
        out[prec] = {**timed(call, repeats), "what": "one forward, batch 1: ms per image per step"}
        report(f"DiT-XL/2 {prec}", out[prec])
    del dit
    gc.collect()
    return out


def bench_vae(repeats) -> dict:
    from diffusers import AutoencoderKL

    from rdpm_gddcm.autoencoders import DiffusersAutoencoder
    with torch.device("meta"):
        meta = AutoencoderKL(**SD_VAE)
    img, lat = torch.rand(1, 3, 256, 256) * 2 - 1, torch.randn(1, *LATENT)
    out = {"model": "diffusers AutoencoderKL, SD-VAE config (random weights), through the library's "
                    "DiffusersAutoencoder (posterior mode, scaling 0.18215), fp32",
           "parameters": count_params(meta),
           "encode_flops": count_flops(lambda: meta.encode(img.to("meta"))),
           "decode_flops": count_flops(lambda: meta.decode(lat.to("meta")))}
    del meta
    torch.manual_seed(0)
    ae = DiffusersAutoencoder(AutoencoderKL(**SD_VAE), name="hf:sd-vae-ft-ema(random)")
    assert ae.latent_shape(256) == LATENT
    out["encode"] = {**timed(lambda: ae.encode(img), repeats), "what": "256 px image -> 4x32x32, batch 1"}
    report("VAE encode", out["encode"])
    out["decode"] = {**timed(lambda: ae.decode(lat), repeats), "what": "4x32x32 -> 256 px image, batch 1"}
    report("VAE decode", out["decode"])
    del ae
    gc.collect()
    return out


def generator_fields(grid: Grid, K: int, num_rows: int) -> dict:
    return dict(num_blocks=grid.num_blocks, block_dim=grid.block_dim, num_rows=num_rows, codebook_size=K,
                num_classes=NUM_CLASSES)


def generator_flops(name: str, grid: Grid, K: int, num_rows: int) -> dict:
    """Forward FLOPs per call (tied head included) and forward+backward FLOPs per training sequence."""
    from accelerate import init_empty_weights          # parameters on meta (free); its init needs a CPU .item()
    with init_empty_weights():
        model = build_generator(name, **generator_fields(grid, K, num_rows))
    params = count_params(model)
    G, Db = grid.num_blocks, grid.block_dim
    sb = torch.randn(1, G, Db, device="meta")
    row, y = torch.zeros(1, dtype=torch.long, device="meta"), torch.zeros(1, dtype=torch.long, device="meta")
    cb = torch.randn(K, G, Db, device="meta")

    def fwd():
        model.head_logits(model(sb, sb, row, y), cb)

    def fwd_bwd():
        logits = model.head_logits(model(sb, sb, row, y), cb)
        target = torch.zeros(G, dtype=torch.long, device="meta")
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), target).backward()

    out = {"model": name, "grid": str(grid), "parameters": params, "forward_flops_per_call": count_flops(fwd),
           "train_flops_per_sequence": count_flops(fwd_bwd)}
    del model
    gc.collect()
    return out


def bench_generator(name: str, grid: Grid, K: int, num_rows: int, precisions, repeats) -> dict:
    out = {"model": name, "grid": str(grid), "codebook_size": K, "num_rows": num_rows}
    rows = CodebookRows(grid, K)
    G, Db = grid.num_blocks, grid.block_dim
    torch.manual_seed(0)
    model = build_generator(name, **generator_fields(grid, K, num_rows))
    out["parameters"] = count_params(model)
    # sampling: one forward + tied head per image per token map (ModelChooser runs two of them, the
    # class and the null class, when CFG is on)
    model.eval()
    cb = rows.codebook_blocks(1, "cpu")
    sb1, xb1, r1, y1 = torch.randn(1, G, Db), torch.randn(1, G, Db), torch.tensor([1]), torch.tensor([3])
    for prec in precisions:
        def call():
            with torch.no_grad(), autocast(prec):
                model.head_logits(model(sb1, xb1, r1, y1), cb).float()
        out[f"sample_{prec}"] = {**timed(call, repeats),
                                 "what": "one forward + tied head, batch 1: ms per image per token map "
                                         "(x2 with CFG)"}
        report(f"{name} forward {prec}", out[f"sample_{prec}"])
    # training: the trainer's generator_loss (forward, tied head, CE) + backward for one sequence;
    # the AdamW step is timed on its own: it is per optimizer step, shared by the global batch
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    tgt = torch.randint(K, (1, G))
    for prec in precisions:
        def fwd_bwd():
            opt.zero_grad(set_to_none=True)            # as after every optimizer step of the trainer
            with autocast(prec):
                loss, _ = generator_loss(model, model, rows, sb1, xb1, r1, y1, tgt)
            loss.backward()
        out[f"train_{prec}"] = {**timed(fwd_bwd, repeats), "what": "forward+backward, batch 1: ms per sequence"}
        report(f"{name} train {prec}", out[f"train_{prec}"])
    out["adamw_step"] = {**timed(opt.step, repeats), "what": "AdamW update of all parameters: ms per optimizer step"}
    report(f"{name} AdamW step", out["adamw_step"])
    del model, opt
    gc.collect()
    return out


def bench_chain(grid: Grid, K: int, num_steps: int, batch: int, repeats: int) -> dict:
    """run_chain with the recipe's plan, codebooks, grid and EncodeChooser (l2) around a free backbone."""
    family = dit_family()
    cfg = TokenizerConfig(plan="trajectory", p=0.5, num_steps=num_steps, codebook_size=K, grid=str(grid))
    plan = build_plan(cfg.plan_config(), family)
    spec = ChainSpec(plan, VirtualCodebook(0, int(np.prod(LATENT))), grid, K, init="codebook")
    bb, x = FreeBackbone(family), torch.randn(batch, *LATENT)
    c0 = time.process_time()
    for n in [INIT_STEP, *range(len(plan))]:
        spec.codebook.entries(n, K, "cpu")
    codebooks_ms = 1000 * (time.process_time() - c0)
    t = timed(lambda: run_chain(bb, spec, EncodeChooser(x, "l2"), batch, None, "cpu", record=True), repeats, batch)
    report(f"chain, batch {batch}, per image", t)
    final_calls = sum(1 for a, b in zip(plan.final_times[:-1], plan.final_times[1:]) if a != b)
    g = torch.Generator().manual_seed(0)

    def gumbel():                                    # ModelChooser.choose's noise: one image, one token map
        u = torch.rand(grid.num_blocks, K, generator=g)
        -torch.log((-torch.log(u.clamp(1e-20, 1.0))).clamp_min(1e-20))

    gum = timed(gumbel, max(repeats, 3))
    report("Gumbel noise per image per token map", gum)
    return {"plan": "trajectory p=0.5", "num_steps": len(plan), "final_ode_calls": final_calls,
            "num_token_rows": spec.num_token_rows, "backbone_calls_per_image": len(plan) + final_calls,
            "encode_chain": {**t, "what": f"run_chain at batch {batch} with the backbone replaced by a free "
                                          "stand-in: init + N selections + state updates, ms per image"},
            "codebook_generation": {"cpu_ms": round(codebooks_ms, 1),
                                    "what": "all N+1 codebooks, once per process (then cached)"},
            "gumbel_noise": {**gum, "what": "ModelChooser's CPU torch.rand(G, K) + Gumbel transform, "
                                            "ms per image per token map"}}


def bench_io(repeats) -> dict:
    """The CPU-side work that rdpm-tokenize and rdpm-sample do serially in each process: decode +
    resize + center-crop one ImageNet-sized JPEG (500x375, the most common ImageNet size; a smooth
    synthetic picture with noise, q=90) and write one 256 px PNG."""
    import tempfile

    from PIL import Image

    from rdpm_gddcm.data import load_image, save_images
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    pic = np.stack([np.sin(xx / 37.0 + c) * 60 + np.cos(yy / 23.0 * (c + 1)) * 50 + 128 for c in range(3)], -1)
    pic = np.clip(pic + rng.normal(0, 12, pic.shape), 0, 255).astype(np.uint8)
    img = torch.rand(1, 3, 256, 256) * 2 - 1
    with tempfile.TemporaryDirectory() as d:
        jpg = os.path.join(d, "x.jpg")
        Image.fromarray(pic).save(jpg, quality=90)
        load = timed(lambda: load_image(jpg, 256), max(repeats, 5))
        png = timed(lambda: save_images(img, [os.path.join(d, "y.png")]), max(repeats, 5))
    report("JPEG load", load)
    report("PNG save", png)
    return {"jpeg_load": {**load, "what": "rdpm_gddcm.data.load_image of a 500x375 JPEG to 256 px, ms per image"},
            "png_save": {**png, "what": "rdpm_gddcm.data.save_images of one 256 px image, ms per image"}}


# ------------------------------------------------------------------------------------------ computed
class _CountingWriter:
    def __init__(self):
        self.n = 0

    def write(self, b):
        self.n += len(b)


def npy_bytes(shape, dtype) -> int:
    """Exact size of an ``np.save`` file of this shape/dtype (header + data), without the data."""
    w = _CountingWriter()
    np.lib.format.write_array_header_1_0(w, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": tuple(shape)})
    return w.n + int(np.prod(shape)) * np.dtype(dtype).itemsize


def cache_sizes(grid: Grid, K: int, num_steps: int, num_images: int, shard_size: int) -> dict:
    """Token-cache bytes exactly as rdpm-tokenize writes them (token_io.write_shard)."""
    R, G = num_steps + 1, grid.num_blocks                           # N steps + the init token map
    tdt = np.dtype(token_dtype(K))
    full, last = divmod(num_images, shard_size)
    shards = {shard_size: full, **({last: 1} if last else {})}     # images per shard -> number of shards

    def total(shape_of, dtype):
        return sum(count * npy_bytes(shape_of(n), dtype) for n, count in shards.items())

    tokens = total(lambda n: (n, R, G), tdt)
    labels = total(lambda n: (n,), np.int64)
    states = 2 * total(lambda n: (n, num_steps, *LATENT), np.float16)      # .states.npy and .xh.npy
    bits = R * G * int(np.ceil(np.log2(K)))
    return {
        "computed": True,
        "formula": {"tokens": "(N + 1 init) token maps x grid blocks x itemsize per image; uint16 for K <= 65536",
                    "labels": "int64 per image",
                    "states_and_xh": "2 x N x 4x32x32 x 2 bytes (fp16) per image (--save-states)",
                    "files": f"{full + bool(last)} shards of {shard_size} images; .npy headers included; the .done "
                             "markers and the JSON manifest (a few KB) are not counted",
                    "train_ram": "what one in-memory int64 copy of every token would take per process (TokenDataset "
                                 "memory-maps the uint16 shards instead)"},
        "grid": str(grid), "num_rows": R, "blocks": G, "token_dtype": tdt.name,
        "bits_per_image": bits, "bpp": bits / 256 ** 2,
        "per_image_bytes": {"tokens": R * G * tdt.itemsize, "labels": 8,
                            "states_and_xh": 2 * num_steps * int(np.prod(LATENT)) * 2},
        "num_images": num_images, "num_shards": full + bool(last),
        "total_bytes": {"tokens": tokens, "labels": labels, "states_and_xh": states,
                        "all_with_states": tokens + labels + states},
        "train_ram_bytes_per_process_tokens_int64": num_images * R * G * 8,
    }


def core_hours(ms: float, n: int) -> float:
    return round(ms * n / 1000 / 3600, 1)


def derive(res: dict, a) -> dict:
    """Per-image costs and totals from the measured CPU times (all labelled computed)."""
    bb, vae, ch, io = res["backbone"], res["vae"], res["chain"], res["io"]
    gen, gflops = res["generator"], res["generator_flops"][f"{a.model}@{a.grid}"]
    R, calls = ch["num_token_rows"], ch["backbone_calls_per_image"]
    enc, dec = vae["encode"]["cpu_ms"], vae["decode"]["cpu_ms"]
    chain, gum = ch["encode_chain"]["cpu_ms"], ch["gumbel_noise"]["cpu_ms"]
    jpg, png = io["jpeg_load"]["cpu_ms"], io["png_save"]["cpu_ms"]
    out = {"computed": True,
           "note": f"sums of the measured single-thread CPU ms above (1 thread: core-hours), generator {a.model}; "
                   "the encode chain's cost is also used for the sampler's chain (an upper bound: it has no "
                   "selection GEMM)"}
    tok, smp = {}, {}
    for p in a.backbone_precisions:
        b = bb[p]["cpu_ms"]
        t_img = jpg + enc + calls * b + chain
        tok[p] = {"formula": f"JPEG load + VAE encode + (N + final ODE) x backbone + chain = "
                             f"{jpg} + {enc} + {calls} x {b} + {chain}",
                  "ms_per_image": round(t_img, 1), "core_hours_all_images": core_hours(t_img, a.num_images)}
        gp = gen.get(f"sample_{p}", gen[f"sample_{a.generator_precisions[0]}"])["cpu_ms"]
        gp_prec = p if f"sample_{p}" in gen else a.generator_precisions[0]
        s_img = calls * b + R * (2 * gp + gum) + chain + dec + png
        smp[p] = {"formula": f"(N + final ODE) x backbone + (N + 1) token maps x (2 generator calls [CFG, {gp_prec}] + "
                             f"Gumbel noise) + chain + VAE decode + PNG = {calls} x {b} + {R} x (2 x {gp} + {gum}) + "
                             f"{chain} + {dec} + {png}",
                  "ms_per_image": round(s_img, 1), "core_hours_num_samples": core_hours(s_img, a.num_samples)}
    out["tokenize_per_image"], out["sample_per_image"] = tok, smp
    train = {}
    for p in a.generator_precisions:
        tp, opt_ms = gen[f"train_{p}"]["cpu_ms"], gen["adamw_step"]["cpu_ms"]
        train[p] = {"formula": f"global batch x fwd+bwd per sequence + AdamW step = {a.global_batch_size} x {tp} + "
                               f"{opt_ms}",
                    "s_per_optimizer_step": round((a.global_batch_size * tp + opt_ms) / 1000, 1),
                    "core_hours_per_epoch": core_hours(tp, a.num_images),
                    "epoch": f"{a.num_images} sequences (one token row each)"}
    out["train_generator"] = train
    # GPU: FLOPs-derived only, under the stated assumption (nothing here was measured on a GPU); the
    # serial CPU-side work of each process (measured above, single thread) is added per image
    eff = a.gpu_peak_tflops * 1e12 * a.gpu_utilization
    tok_flops = calls * bb["flops_per_call"] + vae["encode_flops"]
    smp_flops = calls * bb["flops_per_call"] + 2 * R * gflops["forward_flops_per_call"] + vae["decode_flops"]
    gpu_tok, gpu_smp = 1000 * tok_flops / eff, 1000 * smp_flops / eff
    # rdpm-tokenize decodes JPEGs in --num-workers DataLoader workers while the device runs the chain:
    # an image costs the slower of the two. rdpm-sample draws the Gumbel noise on the device (G·K uniforms
    # per token map: not modelled) and writes PNGs in its own loop: that part adds.
    W = max(a.decode_workers, 1)
    per_gpu_tok, per_gpu_smp = a.num_images / a.num_gpus, a.num_samples / a.num_gpus
    out["gpu_flops_derived"] = {
        "assumption": f"NOT MEASURED: FLOPs / ({a.gpu_utilization:.0%} of {a.gpu_peak_tflops:g} TFLOP/s, the H100 "
                      f"SXM dense bf16 peak), {a.num_gpus} GPUs, perfect scaling; CPU work at this CPU's single-thread "
                      f"speed: JPEG decode in {W} workers per process overlapping the device (an image costs the "
                      "slower of the two), PNG writing after sampling added; Gumbel noise is drawn on the device "
                      "and not modelled",
        "tokenize_flops_per_image": tok_flops, "sample_flops_per_image_with_cfg": smp_flops,
        "train_flops_per_sequence": gflops["train_flops_per_sequence"],
        "tokenize_ms_per_image": {"gpu_part": round(gpu_tok, 2), "cpu_part_per_worker": jpg, "decode_workers": W},
        "sample_ms_per_image": {"gpu_part": round(gpu_smp, 2), "cpu_part": png},
        "tokenize_hours_all_images": {"gpu_part_only": round(per_gpu_tok * gpu_tok / 3.6e6, 2),
                                      "with_cpu_part": round(per_gpu_tok * max(gpu_tok, jpg / W) / 3.6e6, 2)},
        "sample_hours_num_samples": {"gpu_part_only": round(per_gpu_smp * gpu_smp / 3.6e6, 2),
                                     "with_cpu_part": round(per_gpu_smp * (gpu_smp + png) / 3.6e6, 2)},
        "train_hours_per_epoch": round(a.num_images * gflops["train_flops_per_sequence"] / eff / a.num_gpus / 3600, 2),
        "train_hours_max_steps": {"steps": a.max_steps, "global_batch_size": a.global_batch_size,
                                  "hours": round(a.max_steps * a.global_batch_size * gflops["train_flops_per_sequence"]
                                                 / eff / a.num_gpus / 3600, 1)},
    }
    return out


def write_json(path: Path, res: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=2, default=str))
    os.replace(tmp, path)


def main(argv=None):
    a = parse_args(argv)
    a.backbone_precisions = [p for p in a.backbone_precisions.split(",") if p]
    a.generator_precisions = [p for p in a.generator_precisions.split(",") if p]
    out = Path(a.out)
    grid = Grid.parse(LATENT, a.grid)
    R = a.num_steps + 1
    grids = [a.grid, *[g for g in a.alt_grids.split(",") if g]]
    args = sys.argv[1:] if argv is None else list(argv)
    command = "python " + shlex.join(["benchmarks/bench_imagenet_costs.py", *args])
    if a.rederive:
        # recompute the computed part (cache sizes, totals, GPU assumption) from the stored measurements
        res = json.loads(out.read_text())
        res["rederived_with"] = command
    else:
        torch.set_num_threads(a.threads)
        t_start = time.time()
        res = {"command": command, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "machine": platform.machine(), "cpu_count": os.cpu_count(),
               "loadavg_start": [round(v, 2) for v in os.getloadavg()],
               "measured": "CPU time (time.process_time) and wall time of one process at --threads threads, random "
                           "weights (cost does not depend on weight values), median of the timed runs after a "
                           "warm-up; other jobs shared the 2 cores at a higher priority (load averages recorded): "
                           "wall times are inflated many times, CPU times much less",
               "recipe": {"backbone": "DiT-XL/2 256 (diffusers-dit)", "autoencoder": "SD-VAE ft-EMA (hf:)",
                          "plan": "trajectory", "p": 0.5, "num_steps": a.num_steps, "grid": a.grid,
                          "codebook_size": a.codebook_size, "init": "codebook", "generator": a.model,
                          "num_images": a.num_images, "num_samples": a.num_samples,
                          "global_batch_size": a.global_batch_size, "max_steps": a.max_steps}}
        flop_models = dict.fromkeys([a.model, *[m for m in a.flop_models.split(",") if m]])
        sections = [("io", lambda: bench_io(a.repeats)),
                    ("chain", lambda: bench_chain(grid, a.codebook_size, a.num_steps, a.chain_batch, a.chain_repeats)),
                    ("backbone", lambda: bench_backbone(a.backbone_precisions, a.repeats)),
                    ("vae", lambda: bench_vae(a.repeats)),
                    ("generator_flops", lambda: {f"{m}@{g}": generator_flops(m, Grid.parse(LATENT, g),
                                                                             a.codebook_size, R)
                                                 for g in grids for m in flop_models}),
                    ("generator", lambda: bench_generator(a.model, grid, a.codebook_size, R, a.generator_precisions,
                                                          a.repeats))]
        for name, fn in sections:
            res[name] = fn()
            write_json(out, res)                        # a long run under load keeps what it measured
        res["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        res["wall_s"] = round(time.time() - t_start, 1)
    res["cache_sizes"] = {g: cache_sizes(Grid.parse(LATENT, g), a.codebook_size, a.num_steps, a.num_images,
                                         a.shard_size) for g in grids}
    res["derived"] = derive(res, a)
    write_json(out, res)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
