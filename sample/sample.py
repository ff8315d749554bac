#!/usr/bin/env python
"""Class-conditional samples from a trained generator (= `rdpm-sample`; see --help):
grid.png, {i:06d}.png, samples.npz (ADM format) and sample_config.json. Same images for any
batch size or process count:

    accelerate launch sample/sample.py --ckpt runs/gen --num-samples 50000 --cfg-scale 2.0 \
        --temperature 1.0 --sample-dir samples/gen
"""
from rdpm_gddcm.sample import main

if __name__ == "__main__":
    main()
