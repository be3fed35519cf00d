"""Neural forecasters: one file per architecture, registered in :mod:`chainrule.timeseries.models.registry`."""
