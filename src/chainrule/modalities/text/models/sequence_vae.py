"""The sequence VAE (:mod:`chainrule.core.latent.sequence_vae`) on token ids: sentences, or music tokens (music
runs use the text models), with a categorical head over the vocabulary."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from chainrule.core.errors import ConfigError
from chainrule.core.heads.categorical import Categorical
from chainrule.core.latent.sequence_vae import SequenceVAE


class TokenEmbedding(nn.Module):
    """Token ids ``(B, 1, T)`` -> vectors ``(B, T, D)``."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(vocab_size, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.table(x[:, 0])


class TokenSequenceVAE(SequenceVAE):
    """MusicVAE-style sequence VAE over tokens (options: see :class:`SequenceVAE`)."""

    name: ClassVar[str] = "sequence_vae"
    modality: ClassVar[str] = "text"
    default_head: ClassVar[str] = "categorical"
    TINY: ClassVar[dict] = {"segment_length": 1, "embed_dim": 8, "encoder_size": 8, "conductor_size": 8,
                            "decoder_size": 8, "latent": 2, "iwae_samples": 4}

    def input_embedding(self, embed_dim: int) -> nn.Module:
        if not isinstance(self.head, Categorical):
            raise ConfigError(f"{self.name} on tokens needs a categorical head over the vocabulary")
        return TokenEmbedding(self.head.levels, embed_dim)
