#!/usr/bin/env python
"""Metrics of a sample folder/npz against a reference (= `rdpm-eval`; see --help): FID/IS/KID/PR
through torch-fidelity, plus the labelled CPU proxy ("CIFAR-feature FD", "class accuracy").

    python sample/evaluate.py --samples samples/gen/samples.npz --reference DATA/cifar10/train \
        --inception-weights pt_inception-2015-12-05.pth --proxy-classifier assets/cifar10-classifier \
        --out samples/gen
"""
import sys

from rdpm_gddcm.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
