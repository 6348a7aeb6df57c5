"""Inference for latent causal models: guides, training, queries (``import pyrocrl.inference``)."""

__all__: list[str] = []
