#!/usr/bin/env python
"""Train the RDPM-style generator on gDDCM token shards (= `rdpm-train`; see --help).

    accelerate launch train/train_generator.py --tokens tokens/cifar10 --results-dir runs/gen \
        --model gen-xs --max-steps 20000 --global-batch-size 256 --mixed-precision bf16
"""
from rdpm_gddcm.train_generator import main

if __name__ == "__main__":
    main()
