"""Evaluating a trained model control by control on a held-out synthetic test set
(``benchmarks/controls.py``): generation per variant (``variants``) and the pack's
metrics (``models.evaluation``)."""
