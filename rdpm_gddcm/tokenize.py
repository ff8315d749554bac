"""``rdpm-tokenize``: a dataset -> gDDCM token shards + labels + manifest.json (SPEC §8).

Shard i holds positions [i·S, (i+1)·S) of the dataset in class-interleaved order (the first image
of every class, then the second, ...) and is encoded in fixed batches, so its contents do not
depend on how many processes run, and the first N positions are a class-balanced subset for any
``--num-images N``. A larger N extends a smaller one: finished shards are kept, so a long run can be
stopped and finalised with N = the images in its finished shards. Under ``accelerate launch``
process r takes the shards i with i % world == r. Each shard is written atomically and marked
done; re-running skips finished shards (resume). The main process writes ``manifest.json``
(the shared header + shard list) once every shard is done. Images are decoded by
``--num-workers`` DataLoader workers ahead of the chain; the shards do not depend on that number.

``--save-states`` also stores, per image, the chain state before every step and the backbone's
x̂0 at it (fp16), so the RDPM generator can train without calling the backbone (SPEC §9).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import cli
from .cli import nonneg_int, positive_int
from .precision import shared_precision
from .token_io import shard_complete, shard_length, shard_name, write_manifest, write_shard
from .tokenizer import Tokenizer, add_model_args, add_tokenizer_args, load_models, tokenizer_config_from_args
from .files import write_json_atomic


def parse_args(argv=None):
    p = cli.ArgumentParser(prog="rdpm-tokenize", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-path", required=True, help="ImageFolder root or procedural[:N]")
    p.add_argument("--out", required=True, help="output directory for shards and manifest.json")
    p.add_argument("--num-images", type=positive_int, default=None,
                   help="tokenize the first N images in class-interleaved order: a class-balanced subset (default: all)")
    p.add_argument("--shard-size", type=positive_int, default=1024, help="images per shard")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per chain run (fixed: it is part of the result)")
    p.add_argument("--save-states", action="store_true", help="also store per-step states and x̂0 (fp16) for generator training")
    p.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images instead of stopping")
    p.add_argument("--num-workers", type=nonneg_int, default=min(4, os.cpu_count() or 1),
                   help="image-decoding worker processes per process (0 = decode in the main process)")
    add_model_args(p)
    add_tokenizer_args(p)
    return p.parse_args(argv)


def _stack_items(items):
    return torch.stack([im for im, _ in items]), torch.tensor([y for _, y in items])


def shard_batches(i: int, shard_size: int, n: int, batch_size: int) -> list[range]:
    """Shard i's dataset positions in chain batches (fixed: the batch is part of the result)."""
    lo, hi = i * shard_size, min((i + 1) * shard_size, n)
    return [range(b, min(b + batch_size, hi)) for b in range(lo, hi, batch_size)]


def image_batches(ds, order, shards, shard_size, n, batch_size, num_workers):
    """(images, labels) for every ``shard_batches`` range of ``shards``, in order. Workers only
    decode; they do not change what a batch is."""
    from torch.utils.data import DataLoader
    plan = [[int(order[j]) for j in r] for i in shards for r in shard_batches(i, shard_size, n, batch_size)]
    if not plan:
        return iter(())
    loader = DataLoader(ds, batch_sampler=plan, num_workers=num_workers,
                        collate_fn=_stack_items,
                        prefetch_factor=2 if num_workers else None)
    return iter(loader)


def run(a):
    from accelerate import PartialState
    from .data import build_dataset, class_interleaved_order
    state = PartialState(cpu=a.device == "cpu")
    rank, world = state.process_index, state.num_processes
    device = state.device if a.device != "cpu" else torch.device("cpu")
    backbone, ae, size = load_models(a.backbone, a.autoencoder, a.image_size, device, a.mixed_precision)
    backbone.use_precision(shared_precision(backbone.precision, state))     # the one the header records
    cfg = tokenizer_config_from_args(a)
    tok = Tokenizer(backbone, ae, cfg, size, device)
    ds = build_dataset(a.data_path, size)
    keep, skipped = list(range(len(ds))), []
    if a.skip_corrupt and hasattr(ds, "scan_readable"):
        keep, skipped = ds.scan_readable()          # skipping skips: no other image takes a bad file's place
        skipped = [os.path.relpath(p, a.data_path) for p in skipped]
        if skipped:
            print(f"skipping {len(skipped)} unreadable file(s), e.g. {skipped[0]} (all listed in manifest.json)")
    if a.num_images is not None and a.num_images > len(keep):
        raise ValueError(f"--num-images {a.num_images} but {a.data_path} holds {len(keep)} readable images: pass "
                         f"--num-images {len(keep)} or less (or leave it out for all)")
    n = len(keep) if a.num_images is None else a.num_images
    order = [keep[j] for j in class_interleaved_order([ds.targets[i] for i in keep])][:n]   # shard position -> index
    nshards = -(-n // a.shard_size)
    out = Path(a.out)
    header = tok.header()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".shard-*.tmp*"):        # temporaries of a run killed mid-write
            stale.unlink(missing_ok=True)
        prev = out / "tokenizer_config.json"
        run_cfg = {"tokenizer": asdict(cfg), "header": header.to_json(), "data_path": a.data_path, "num_images": n,
                   "order": "class-interleaved", "dataset_size": len(ds), "skipped_files": skipped,
                   "shard_size": a.shard_size, "batch_size": a.batch_size, "save_states": a.save_states}
        if prev.exists():
            old, keys = json.loads(prev.read_text()), ["header", "data_path", "order", "dataset_size", "shard_size",
                                                      "batch_size"]
            if any(shard_complete(out, i) for i in range(-(-old["num_images"] // old["shard_size"]))):
                keys.append("skipped_files")      # which files are left out moves every later image
            if {k: old.get(k) for k in keys} != json.loads(json.dumps({k: run_cfg[k] for k in keys})):
                raise ValueError(f"{out} holds shards made with other settings or another dataset (see {prev}); "
                                 "use a new --out")
            if old["num_images"] != n:
                # another N: the manifest is withdrawn until every shard of the new N is done; finished
                # shards are kept where they hold the images the new N puts there (the order is
                # prefix-stable, so that is where their image count matches), whichever earlier N made them
                (out / "manifest.json").unlink(missing_ok=True)
        write_json_atomic(prev, run_cfg)
    state.wait_for_everyone()
    mine = [i for i in range(nshards) if i % world == rank and not shard_complete(out, i, shard_length(i, n, a.shard_size))]
    batches = image_batches(ds, order, mine, a.shard_size, n, a.batch_size, a.num_workers)
    t0, done_imgs = time.time(), 0
    for i in tqdm(mine, desc=f"shards (rank {rank})", disable=not state.is_local_main_process):
        toks, labs, sts, xhs = [], [], [], []
        for _ in shard_batches(i, a.shard_size, n, a.batch_size):      # the loader yields these, in order
            imgs, labels = next(batches)
            chain = tok.tokenize_images(imgs, labels, record=a.save_states)
            toks.append(chain.tokens.cpu().numpy())
            labs.append(labels.numpy())
            if a.save_states:
                sts.append(torch.stack(chain.states, 1).half().cpu().numpy())
                xhs.append(torch.stack(chain.xhs, 1).half().cpu().numpy())
        extras = {"states": np.concatenate(sts), "xh": np.concatenate(xhs)} if a.save_states else None
        write_shard(out, i, np.concatenate(toks), np.concatenate(labs), cfg.codebook_size, extras)
        done_imgs += sum(len(v) for v in labs)
    state.wait_for_everyone()
    if state.is_main_process:
        missing = [i for i in range(nshards) if not shard_complete(out, i, shard_length(i, n, a.shard_size))]
        if missing:
            raise ValueError(f"shards {missing[:5]} are not done; re-run rdpm-tokenize to finish them")
        shards = [{"name": shard_name(i), "num_images": shard_length(i, n, a.shard_size)} for i in range(nshards)]
        write_manifest(out, header, shards, {"has_states": a.save_states, "num_classes": getattr(ds, "num_classes", None),
                                             "classes": getattr(ds, "classes", None),
                                             "bits_per_image": tok.bits_per_image, "bpp": tok.bpp,
                                             "num_skipped": len(skipped), "skipped_files": skipped})
        secs = time.time() - t0
        print(f"tokenized {n} images into {nshards} shards at {out} "
              f"({done_imgs} by process 0 this run, {world} process(es), {secs:.1f} s, {tok.bits_per_image} bits/image"
              + (f"; {len(skipped)} unreadable file(s) skipped" if skipped else "") + ")")


def main(argv=None):
    from .cli import run_command
    a = parse_args(argv)
    return run_command("rdpm-tokenize", lambda: run(a))


if __name__ == "__main__":
    main()
