"""Latent-variable models on the one contract that know no modality (the modality supplies embedding and head)."""
