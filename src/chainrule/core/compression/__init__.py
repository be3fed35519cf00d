"""Lossless compression driven by any model's conditionals: the modality-free part.

A model's conditional ``p(x_t | x_<t)`` at every step is quantised to integer frequencies
(:mod:`~chainrule.core.compression.quantise`) and fed to a range coder (:mod:`~chainrule.core.compression.coder`,
the ``constriction`` package) in one loop shared by encoder and decoder
(:mod:`~chainrule.core.compression.loop`); the ``.cr`` file format is :mod:`~chainrule.core.compression.container`.
Turning a file into a model's symbols and back is each modality's ``codec`` module.
"""
