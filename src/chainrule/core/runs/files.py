"""What a run directory holds: every file and folder name in one place, so writers and readers agree."""

from __future__ import annotations

#: everything needed to rebuild the model and its data pipeline (``data``/``model``/``train``/``output`` + ``spec``)
CONFIG_FILE = "config.yaml"
#: the weights to use: best validation NLL, or the final (EMA) weights of a run without validation
BEST_WEIGHTS = "best.safetensors"
#: the training summary (and evaluation results added later)
SUMMARY_FILE = "summary.json"
#: one JSON record per line: training logs and validation results
METRICS_FILE = "metrics.jsonl"
#: a text run's tokenizer
TOKENIZER_FILE = "tokenizer.json"
#: ``step-NNNNNN.{safetensors,ema.safetensors,state.pt}`` for exact resume
CHECKPOINTS_DIR = "checkpoints"
#: sample grids / texts written when training finishes
SAMPLES_DIR = "samples"
#: the training curve
PLOTS_DIR = "plots"
#: TensorBoard event files (``output.tensorboard=true``)
TENSORBOARD_DIR = "tensorboard"
#: held (``flock``) by the one process writing the run; records its PID; removed when it finishes
LOCK_FILE = ".lock"
