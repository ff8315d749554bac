#!/usr/bin/env python
"""Train the small CIFAR-10 proxy classifier behind rdpm-eval's "CIFAR-feature FD" and
"class accuracy" CPU proxy metrics (NOT FID; see rdpm_gddcm/classifier.py).

The shipped weights (assets/cifar10-classifier/, see its CARD.md for the exact command, wall
time and accuracy) were made on this workplace's CPU with the equivalent of, from the repository
root (the defaults are that recipe):

    nice -n 10 nohup .venv/bin/python train/train_classifier.py \
        --data-path ../shared/data/cifar10 --epochs 9 --batch-size 512 --lr 0.4 \
        --widths 32,64,128,256 --mixed-precision bf16 --num-threads 1 \
        --out runs/cifar10-classifier > runs/cifar10-classifier.log 2>&1 &

Writes classifier.safetensors (fp16), classifier.json, metrics.json and log.txt to --out.
Flags: --data-path (ImageFolder root with train/ and val/), --epochs, --batch-size, --lr, --out,
--mixed-precision {no,bf16}, --num-threads, ...; see --help.
"""
from rdpm_gddcm.classifier import main

if __name__ == "__main__":
    main()
