"""Track a text-to-speech run's alignment on held-out prompts, checkpoint by checkpoint.

For the newest checkpoint of RUN (or ``--weights FILE``), on the first ``--prompts`` validation prompts: the
alignment figures of :func:`chainrule.modalities.audio.alignment.alignment_figures` (mean largest attention weight
per decoder step; share of steps whose attended character does not move back; whether the last step attends to
the end of the text) under teacher forcing and when synthesising from the text alone, whether the stop flag fired,
and the duration ratio synthesised / recorded. Appends one JSON line to RUN/alignment_track.jsonl and writes the
alignment PNG of the first prompt (free-running) as RUN/alignment-stepN.png.

    .venv/bin/python bench/tts_alignment.py bench/runs/tts/speech-tacotron --prompts 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from chainrule.core.training.checkpoint import list_checkpoints, load_weights
from chainrule.modalities.audio.alignment import alignment_figures
from chainrule.modalities.audio.data.prompts import prompt_dataset
from chainrule.modalities.audio.tts_plots import save_alignment
from chainrule.tts import load_tts, synthesise


def track(run_dir: Path, weights: Path | None, prompts: int, split: str = "val") -> dict:
    run, model, mel = load_tts(run_dir)
    if weights is None:
        weights = list_checkpoints(run_dir)[-1].weights
    step = load_weights(model, weights).get("step", weights.stem)
    data = prompt_dataset(split, mel, float(run.config["data"].get("max_seconds", 6.0)))
    free, forced, stopped, ratios = [], [], [], []
    r = model.reduction
    for i in range(min(prompts, len(data))):
        x, cond = data.get(torch.tensor([i]))
        with torch.no_grad():
            _, _, a = model.network(x, cond.labels)
        forced.append(alignment_figures(a[0, : -(-x.shape[1] // r)].numpy()))
        torch.manual_seed(i)
        prompt = data.prompts[i]
        said, _ = synthesise(model, prompt.text, 1.5 * len(prompt.wave) / mel.rate + 0.5, mel)
        free.append(alignment_figures(said.alignment.numpy()))
        stopped.append(said.stopped)
        ratios.append(len(said.frames) / x.shape[1])
        if i == 0:
            save_alignment(said.alignment.numpy(), prompt.text, run_dir / f"alignment-step{step}.png")

    def mean(rows: list[dict], key: str) -> float:
        return float(np.mean([row[key] for row in rows]))

    record = {"step": step, "prompts": len(free),
              "teacher_forced": {k: mean(forced, k) for k in forced[0]},
              "synthesised": {k: mean(free, k) for k in free[0]},
              "stop_fired": float(np.mean(stopped)), "duration_ratio": float(np.mean(ratios))}
    with open(run_dir / "alignment_track.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--weights", type=Path, help="a weights file (default: the newest checkpoint's)")
    p.add_argument("--prompts", type=int, default=4)
    a = p.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(track(a.run, a.weights, a.prompts)))


if __name__ == "__main__":
    main()
