"""The FactorPortrait network: the DiT with its condition fusion, its checkpoint files and its sampler."""
