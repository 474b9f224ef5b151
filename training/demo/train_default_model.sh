#!/usr/bin/env bash
# Train the pack's default demonstration model from nothing, on the CPU (docs/default_model.md):
# synthetic data, the small Wan 2.1-layout VAE, latents, the DiT, in three stages
# (the order in which the shipped files were made). Every step resumes where it stopped
# when run again. Writes weights/ (the shipped files).
#   bash training/demo/train_default_model.sh        # after scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=.venv/bin/python
THREADS=${THREADS:-2}
ANNY=${ANNY_CACHE:-.host/ComfyUI/models/anny}
mkdir -p data runs weights/vae weights/factorportrait
latest() { ls "$1"/*-step*.safetensors | sort -V | tail -n 1; }
cache() {  # cache <vae file> <tag>: latents of every clip, two shards in parallel (one per core)
  for shard in 0 1; do
    OMP_NUM_THREADS=1 $PY training/cache_latents.py --data data/synth_train --vae "$1" --tag "$2" \
        --batch-size 8 --shard $shard --num-shards 2 &
  done
  wait
}

# 1. 1200 synthetic clips, 128x128, 17 frames (two shards in parallel, one per core)
for shard in 0 1; do
  $PY training/generate_synthetic.py --out data/synth_train --count 1200 --seed 0 \
      --shard $shard --num-shards 2 --threads 1 --anny-cache "$ANNY" &
done
wait

# Stage 1
# 2. the VAE: 1500 steps on 5-frame crops, then 400 on 9-frame crops
$PY training/train_vae.py --data data/synth_train --out runs/vae16 --dim 16 --steps 1500 --frames 5 \
    --batch-size 8 --lr 3e-4 --threads "$THREADS" --export runs/vae16/stage1.safetensors
$PY training/train_vae.py --data data/synth_train --out runs/vae16 --dim 16 --steps 1900 --frames 9 \
    --batch-size 4 --lr 1e-3 --threads "$THREADS" --export runs/vae16/stage1.safetensors
# 3. latents with that VAE, and the DiT from scratch
cache runs/vae16/stage1.safetensors factorportrait_demo_vae
$PY training/train.py --config training/configs/demo_128px.toml --device cpu --no-progress
cp "$(latest runs/demo_128px/checkpoints)" runs/demo_128px/stage1.safetensors

# Stage 2
# 4. the VAE fine-tuned on whole 17-frame clips (32-pixel crops), so the 4th and 5th latent
#    frames decode as well as the first
$PY training/train_vae.py --data data/synth_train --out runs/vae16_stage2 --dim 16 --steps 800 --frames 17 \
    --batch-size 4 --lr 3e-4 --threads "$THREADS" --init runs/vae16/stage1.safetensors \
    --export weights/vae/factorportrait_demo_vae.safetensors
# 5. latents with it, and the stage-1 DiT fine-tuned on them (8000 steps)
cache weights/vae/factorportrait_demo_vae.safetensors factorportrait_demo_vae_stage2
$PY training/train.py --config training/configs/demo_128px_stage2.toml --device cpu --no-progress
cp "$(latest runs/demo_128px_stage2/checkpoints)" runs/demo_128px/stage2.safetensors

# Stage 3
# 6. the stage-2 DiT trained 6000 more steps on the same latents, from a lower peak rate
$PY training/train.py --config training/configs/demo_128px_stage3.toml --device cpu --no-progress
cp "$(latest runs/demo_128px_stage3/checkpoints)" weights/factorportrait/factorportrait_demo_128px.safetensors
echo "default model: weights/factorportrait/factorportrait_demo_128px.safetensors"
