"""``rdpm-tokenize``: a dataset -> gDDCM token shards + labels + manifest.json (SPEC §8).

Shard i holds images [i·S, (i+1)·S) of the dataset in its fixed order and is encoded in fixed
batches, so its contents do not depend on how many processes run. Under ``accelerate launch``
process r takes the shards i with i % world == r. Each shard is written atomically and marked
done; re-running skips finished shards (resume). The main process writes ``manifest.json``
(the shared header + shard list) once every shard is done.

``--save-states`` also stores, per image, the chain state before every step and the backbone's
x̂0 at it (fp16), so the RDPM generator can train without calling the backbone (SPEC §9).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .token_io import shard_complete, shard_name, write_manifest, write_shard
from .tokenizer import Tokenizer, add_model_args, add_tokenizer_args, load_models, tokenizer_config_from_args
from .training import write_json_atomic


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="rdpm-tokenize", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-path", required=True, help="ImageFolder root or procedural[:N]")
    p.add_argument("--out", required=True, help="output directory for shards and manifest.json")
    p.add_argument("--num-images", type=int, default=None, help="tokenize only the first N images (default: all)")
    p.add_argument("--shard-size", type=int, default=1024, help="images per shard")
    p.add_argument("--batch-size", type=int, default=64, help="images per chain run (fixed: it is part of the result)")
    p.add_argument("--save-states", action="store_true", help="also store per-step states and x̂0 (fp16) for generator training")
    p.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images instead of stopping")
    add_model_args(p)
    add_tokenizer_args(p)
    return p.parse_args(argv)


def run(a):
    from accelerate import PartialState
    from .data import build_dataset
    state = PartialState(cpu=a.device == "cpu")
    rank, world = state.process_index, state.num_processes
    device = state.device if a.device != "cpu" else torch.device("cpu")
    backbone, ae, size = load_models(a.backbone, a.autoencoder, a.image_size, device, a.mixed_precision)
    cfg = tokenizer_config_from_args(a)
    tok = Tokenizer(backbone, ae, cfg, size, device)
    ds = build_dataset(a.data_path, size, skip_corrupt=a.skip_corrupt)
    n = len(ds) if a.num_images is None else min(a.num_images, len(ds))
    nshards = -(-n // a.shard_size)
    out = Path(a.out)
    header = tok.header()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        prev = out / "tokenizer_config.json"
        run_cfg = {"tokenizer": asdict(cfg), "header": header, "data_path": a.data_path, "num_images": n,
                   "shard_size": a.shard_size, "batch_size": a.batch_size, "save_states": a.save_states}
        if prev.exists() and json.loads(prev.read_text())["header"] != json.loads(json.dumps(header)):
            raise SystemExit(f"{out} holds shards made with other settings (see {prev}); use a new --out")
        write_json_atomic(prev, run_cfg)
    state.wait_for_everyone()
    mine = [i for i in range(nshards) if i % world == rank and not shard_complete(out, i)]
    t0, done_imgs = time.time(), 0
    for i in tqdm(mine, desc=f"shards (rank {rank})", disable=not state.is_local_main_process):
        lo, hi = i * a.shard_size, min((i + 1) * a.shard_size, n)
        toks, labs, sts, xhs = [], [], [], []
        for b in range(lo, hi, a.batch_size):
            items = [ds[j] for j in range(b, min(b + a.batch_size, hi))]
            imgs = torch.stack([im for im, _ in items])
            labels = torch.tensor([y for _, y in items])
            tokens, _, chain = tok.encode(imgs, labels, record=a.save_states)
            toks.append(tokens.cpu().numpy())
            labs.append(labels.numpy())
            if a.save_states:
                sts.append(torch.stack(chain.states, 1).half().cpu().numpy())
                xhs.append(torch.stack(chain.xhs, 1).half().cpu().numpy())
        extras = {"states": np.concatenate(sts), "xh": np.concatenate(xhs)} if a.save_states else None
        write_shard(out, i, np.concatenate(toks), np.concatenate(labs), cfg.codebook_size, extras)
        done_imgs += hi - lo
    state.wait_for_everyone()
    if state.is_main_process:
        missing = [i for i in range(nshards) if not shard_complete(out, i)]
        if missing:
            raise SystemExit(f"shards {missing[:5]} are not done; re-run rdpm-tokenize to finish them")
        shards = [{"name": shard_name(i), "num_images": min((i + 1) * a.shard_size, n) - i * a.shard_size}
                  for i in range(nshards)]
        write_manifest(out, header, shards, {"has_states": a.save_states, "num_classes": getattr(ds, "num_classes", None),
                                             "classes": getattr(ds, "classes", None),
                                             "bits_per_image": tok.bits_per_image, "bpp": tok.bpp})
        secs = time.time() - t0
        print(f"tokenized {n} images into {nshards} shards at {out} "
              f"({done_imgs} this run, {secs:.1f} s, {tok.bits_per_image} bits/image)")


def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()
