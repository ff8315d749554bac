#!/usr/bin/env python
"""Compress one image to a gDDCM token file and back (= `rdpm-codec`; see --help).

    python tokenizer/codec.py encode cat.png -o cat.gddcm --backbone assets/cifar10-pixels-vp \
        --plan trajectory --p 0.5 --num-steps 10 --grid 8x8 --codebook-size 4096
    python tokenizer/codec.py decode cat.gddcm -o cat_rec.png --backbone assets/cifar10-pixels-vp
"""
from rdpm_gddcm.codec import main

if __name__ == "__main__":
    main()
