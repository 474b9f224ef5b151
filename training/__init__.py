"""Making FactorPortrait weights: data generation, datasets and the trainer (pure PyTorch).

    synthetic/  anny avatars rendered with known identity, expression, pose and camera
    prepare/    real talking-head videos -> samples (the pack's own tracking and encoder)
    data/       the on-disk sample format, manifests, the dataset, cached VAE latents
    trainer/    config, rectified-flow loss, parameter groups (controls / LoRA / full),
                checkpoints and resume state, torch.distributed (DDP, FSDP2)

Nothing here imports ComfyUI except the latent cache, which loads ComfyUI's own VAE class
(DESIGN.md). The command-line entry points are the scripts next to this file
(``generate_synthetic.py``, ``prepare_videos.py``, ``cache_latents.py``, ``train.py``;
what they share is in ``cli_common.py``).
"""
