#!/usr/bin/env python
"""Measure the shipped CIFAR-10 proxy classifier and write ``benchmarks/results/classifier.json``.

Measures, on this machine: top-1 accuracy on all CIFAR-10 val images (the shipped fp16 weights
loaded as fp32, no test-time augmentation), inference throughput (images/s, fp32, batch 500,
``--num-threads`` threads), parameter count and weight-file size; copies the training wall time
and epochs from the asset's ``metrics.json`` (written by ``python -m rdpm_gddcm.classifier``).

    .venv/bin/python benchmarks/bench_classifier.py \\
        --classifier assets/cifar10-classifier --data-path ../shared/data/cifar10
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--classifier", default=str(REPO / "assets" / "cifar10-classifier"), help="classifier directory")
    p.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "cifar10"),
                   help="ImageFolder root with val/")
    p.add_argument("--num-threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "classifier.json"), help="result JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)

    from rdpm_gddcm.classifier import evaluate_accuracy, load_classifier, load_imagefolder_uint8, num_parameters

    cdir = Path(args.classifier)
    model = load_classifier(cdir)
    xva, yva, classes = load_imagefolder_uint8(Path(args.data_path) / "val")
    t0 = time.time()
    acc = evaluate_accuracy(model, xva, yva, batch_size=500)
    dt = time.time() - t0
    per_class = {}
    with torch.no_grad():
        preds = torch.cat([model.logits(xva[i:i + 500]).argmax(1) for i in range(0, len(xva), 500)])
    for ci, c in enumerate(classes):
        m = yva == ci
        per_class[c] = round(float((preds[m] == ci).float().mean()), 4)
    train = json.loads((cdir / "metrics.json").read_text()) if (cdir / "metrics.json").is_file() else {}
    result = {
        "what": "CIFAR-10 proxy classifier (rdpm_gddcm.classifier) behind the 'CIFAR-feature FD' and 'class accuracy' "
                "proxy metrics; not an Inception network, not FID",
        "val_accuracy": round(acc, 4),
        "val_images": len(xva),
        "val_accuracy_per_class": per_class,
        "parameters": num_parameters(model),
        "file_size_bytes": (cdir / "classifier.safetensors").stat().st_size,
        "weights_dtype": "float16",
        "inference_images_per_second_fp32": round(len(xva) / dt, 1),
        "inference_threads": args.num_threads,
        "train_epochs": train.get("epochs"),
        "train_wall_seconds": train.get("train_wall_seconds"),
        "train_total_wall_seconds": train.get("total_wall_seconds"),
        "train_threads": train.get("num_threads"),
        "train_config": train.get("train_config"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)",
        "torch": torch.__version__,
        "command": "benchmarks/bench_classifier.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
