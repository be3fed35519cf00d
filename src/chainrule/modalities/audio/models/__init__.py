"""Audio models on the one contract (:mod:`chainrule.core.contract`)."""
