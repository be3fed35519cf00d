"""Adversarial fine-tuning of a token language model (SeqGAN-style): a discriminator over token sequences, the
REINFORCE update of the generator with a moving-average baseline, and the loop that alternates them with an
optional maximum-likelihood term."""

from chainrule.modalities.text.adversarial.discriminator import TokenDiscriminator, discriminator_loss
from chainrule.modalities.text.adversarial.policy import MovingBaseline, reinforce_loss, sample_sequences
from chainrule.modalities.text.adversarial.seqgan import AdversarialConfig, fit_adversarial

__all__ = ["AdversarialConfig", "MovingBaseline", "TokenDiscriminator", "discriminator_loss", "fit_adversarial",
           "reinforce_loss", "sample_sequences"]
