#!/usr/bin/env python
"""Train a class-conditional diffusion backbone (= `rdpm-train-backbone`; see --help).

Runs unchanged on one CPU process or many GPUs:

    accelerate launch train/train_backbone.py --data-path DATA/cifar10/train --image-size 32 \
        --family vp --model unet-cpu --results-dir runs/cifar10-pixels-vp --max-steps 1000 \
        --global-batch-size 64 --lr 5e-4 --warmup-steps 50 --mixed-precision bf16

The exact commands of the shipped backbones are in assets/*/CARD.md.
"""
from rdpm_gddcm.train_backbone import main

if __name__ == "__main__":
    main()
