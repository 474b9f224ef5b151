#!/usr/bin/env bash
# Train the pack's default demonstration model from nothing, on the CPU (README "The default
# model"): synthetic data, the small Wan 2.1-layout VAE, latents, the DiT. Every step
# resumes where it stopped when run again. Writes weights/ (the shipped files).
#   bash training/demo/train_default_model.sh        # after scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=.venv/bin/python
THREADS=${THREADS:-2}
ANNY=${ANNY_CACHE:-.host/ComfyUI/models/anny}
mkdir -p data runs weights/vae weights/factorportrait

# 1. 1200 synthetic clips, 128x128, 17 frames (two shards in parallel, one per core)
for shard in 0 1; do
  $PY training/generate_synthetic.py --out data/synth_train --count 1200 --seed 0 \
      --shard $shard --num-shards 2 --threads 1 --anny-cache "$ANNY" &
done
wait
# 2. the VAE: 1500 steps on 5-frame crops, then 400 on 9-frame crops (the chunk-after-chunk path)
$PY training/train_vae.py --data data/synth_train --out runs/vae16 --dim 16 --steps 1500 --frames 5 \
    --batch-size 8 --lr 3e-4 --threads "$THREADS" --export weights/vae/factorportrait_demo_vae.safetensors
$PY training/train_vae.py --data data/synth_train --out runs/vae16 --dim 16 --steps 1900 --frames 9 \
    --batch-size 4 --lr 1e-3 --threads "$THREADS" --export weights/vae/factorportrait_demo_vae.safetensors
# 3. latents of every clip with that VAE
for shard in 0 1; do
  OMP_NUM_THREADS=1 $PY training/cache_latents.py --data data/synth_train \
      --vae weights/vae/factorportrait_demo_vae.safetensors --shard $shard --num-shards 2 &
done
wait
# 4. the DiT
$PY training/train.py --config training/configs/demo_128px.toml --device cpu --no-progress
last=$(ls runs/demo_128px/checkpoints/factorportrait_demo_128px-step*.safetensors | sort -V | tail -n 1)
cp "$last" weights/factorportrait/factorportrait_demo_128px.safetensors
echo "default model: weights/factorportrait/factorportrait_demo_128px.safetensors (from $last)"
