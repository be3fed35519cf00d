"""Neural forecasters: one file per architecture, registered in :mod:`chainrule.modalities.registry`."""
