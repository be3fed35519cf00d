"""Time-series forecasting: tables of series, datasets, metrics, baselines, backtests and neural forecasters.

Light on import: the submodules are imported where they are used (``chainrule.modalities.series.table`` etc.).
"""
