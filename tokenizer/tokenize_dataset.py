#!/usr/bin/env python
"""Tokenize a dataset into gDDCM token shards + manifest.json (= `rdpm-tokenize`; see --help).

Each process takes its share of the shards; re-running resumes; the shards do not depend on the
process count:

    accelerate launch tokenizer/tokenize_dataset.py --data-path DATA/cifar10/train \
        --backbone assets/cifar10-pixels-vp --out tokens/cifar10 --plan trajectory --p 0.5 \
        --num-steps 10 --grid 8x8 --codebook-size 4096 --save-states
"""
from rdpm_gddcm.tokenize import main

if __name__ == "__main__":
    main()
