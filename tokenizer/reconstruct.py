#!/usr/bin/env python
"""Tokenizer fidelity on a dataset: metrics.json (PSNR, SSIM, bits, bpp, s/image) and
reconstructions.png (= `rdpm-reconstruct`; see --help).

    python tokenizer/reconstruct.py --data-path DATA/cifar10/val --backbone assets/cifar10-pixels-vp \
        --num-images 128 --plan fixed-point --num-steps 300 --codebook-size 1024 --out runs/recon
"""
from rdpm_gddcm.reconstruct import main

if __name__ == "__main__":
    main()
