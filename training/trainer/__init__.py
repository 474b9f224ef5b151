"""The FactorPortrait trainer (``training/train.py`` is its command line).

- :mod:`.config`: the config file, checked key by key.
- :mod:`.randomness`: every random draw as a function of (seed, step, sample), so runs are
  reproducible across resumes and across any number of ranks.
- :mod:`.flow_loss`: the rectified-flow loss on the sampler's own schedule.
- :mod:`.control_dropout`: dropping controls per sample, as the guidance branches do.
- :mod:`.lora`: LoRA adapters on the DiT's Linear layers, and ComfyUI-format LoRA files.
- :mod:`.param_groups`: controls only, controls + LoRA, or full.
- :mod:`.ema`: exponential moving average of the trained weights.
- :mod:`.lr_schedule`: warm-up, constant or cosine.
- :mod:`.distributed`: torch.distributed set-up (torchrun), DDP and FSDP2 wrapping.
- :mod:`.state`: resume state (weights, optimizer, EMA, step) without pickle.
- :mod:`.exports`: checkpoints for FactorPortrait Load Model (controls, full, LoRA).
- :mod:`.loop`: the training loop.
"""
