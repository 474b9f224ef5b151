"""Training a small VAE of the Wan 2.1 architecture and key layout (ComfyUI's ``WanVAE``)."""
