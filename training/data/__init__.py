"""The training data on disk: one safetensors file per clip plus per-shard manifests.

- :mod:`.sample`: the clip sample (frames, reference, normal maps, camera, expression) and
  its file format, written atomically.
- :mod:`.manifest`: per-shard JSONL manifests with checksums; resuming a shard.
- :mod:`.dataset`: a ``torch.utils.data.Dataset`` over a data folder.
- :mod:`.latent_cache`: Wan 2.1 VAE latents of a sample, cached next to it.
"""
