"""chainrule: autoregressive generative models."""
__version__ = "0.1.0"
