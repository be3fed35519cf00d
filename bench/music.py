"""Music benchmark: held-out nats per event on the Bach chorales, the sequence VAE's reconstructions and
interpolations, and sampling time per bar.

Every model is trained for a fixed number of steps (batch 32, AdamW, the trainer's defaults otherwise) on the
chorales' train split and scored on the 37 test chorales (the fixed split by piece):

- ``melody`` (the comparable table): the soprano line on the 16th-note grid, windows of 4 bars (64 events);
  unigram (token frequencies of the train split, add-one smoothing), LSTM (``rnn_lm``), Transformer, and the
  sequence VAE scored by its IWAE bound (k = 100; an upper bound on its NLL).
- ``remi``: all four voices as REMI events, windows of 256 events: the unigram, and with ``--remi`` the LSTM and
  Transformer (the VAE is a melody model).

For the VAE (KL warm-up over the first half of its steps): the KL term in nats per window; reconstruction of
held-out 4-bar windows from their posterior means, in nats per event (teacher-forced) and as greedy-decoding
accuracy (per event and per whole bar), each against a z-blind reference (the same decoder given another
window's posterior mean: equal figures mean the decoder ignores z); interpolation smoothness (fraction of notes
changed between consecutive steps of a 7-step spherical interpolation between pairs of test windows, against the
change between the two ends) and sampling time per bar from the prior (and for the Transformer, per bar of
melody). Writes bench/results/music.json and music.md (``-quick`` suffix for a smoke run).

    .venv/bin/python bench/music.py            # 600 steps per model (BENCHMARKS.md: --steps 100)
    .venv/bin/python bench/music.py --quick    # a smoke run: 3 steps per model, a few windows
    .venv/bin/python bench/music.py --models sequence_vae --steps 600 --part-suffix -600   # the VAE alone
    .venv/bin/python bench/music.py --merge current sequence_vae-600   # add a part to the current music.json

One torch thread by default (``--threads``): with torch's default of one thread per core, a small recurrent model
on a shared machine spends most of each step waiting for its threads (measured: 8x slower per step for the LSTM
at load average 9), the main reason the first 100-step language-model rows took ten minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from chainrule import api
from chainrule.modalities.datasets import load_splits
from chainrule.music import notes_changed, slerp

HERE = Path(__file__).resolve().parent
LM_SIZES = {"rnn_lm": ["model.embed_dim=32", "model.hidden_size=128", "model.num_layers=1"],
            "transformer": ["model.embed_dim=64", "model.num_layers=2", "model.num_heads=4"]}
VAE_SIZE = ["model.embed_dim=32", "model.encoder_size=64", "model.conductor_size=64", "model.decoder_size=64",
            "model.latent=16", "model.free_bits=0.5", "model.word_dropout=0.5", "model.iwae_samples=100"]
CONTEXT = {"melody": 64, "remi": 256}
#: for orientation only: the standard JSB-chorales benchmark (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012)
#: scores piano-roll frames (one per quarter note, 88 binary keys) in nats per frame; its figures are not quoted
#: here because they could not be checked against the paper offline, and they are not comparable (see BENCHMARKS.md)
PUBLISHED = {"reference": "Boulanger-Lewandowski, Bengio & Vincent (2012), Modeling temporal dependencies in "
                          "high-dimensional sequences, ICML; JSB chorales, frame-level NLL (not comparable)"}


def unigram_nats(train, test) -> float:
    """Nats per event of the test windows under the train split's token frequencies (add-one smoothing)."""
    counts = np.bincount(train.tokens, minlength=train.levels).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    x, _ = test.get(range(len(test)))
    return float(-log_p[x.numpy()].mean())


def train_and_score(root: Path, encoding: str, model: str, steps: int, extra: list[str]) -> tuple[dict, object]:
    overrides = [f"data.encoding={encoding}", f"data.context={CONTEXT[encoding]}", f"train.steps={steps}",
                 "train.batch_size=32", "train.lr=2e-3", f"train.warmup_steps={min(50, steps)}",
                 f"train.eval_every={max(steps, 1)}", f"train.checkpoint_every={max(steps, 1)}",
                 "train.progress=false", "output.samples=0", "train.seed=0", *extra]
    start = time.perf_counter()
    run = api.train("chorales", model, overrides=overrides, run_dir=root / f"{encoding}-{model}")
    seconds = time.perf_counter() - start
    result = api.evaluate(run, out=root / f"{encoding}-{model}.json", batch_size=64)
    params = result["params"]
    return {"encoding": encoding, "model": model, "nats_per_event": result["nats_per_event"],
            "likelihood": result["likelihood"], "params": params,
            "iwae_samples": run.config["model"].get("iwae_samples"), "steps": steps,
            "train_seconds_under_load": round(seconds, 1)}, run


@torch.no_grad()
def vae_figures(run, test, windows: int, pairs: int) -> dict:
    model = run.load_model()
    tok = test.tokenizer
    x, _ = test.get(range(min(windows, len(test))))
    mean, log_var = model.posterior(x)
    other = mean.roll(1, dims=0)  # another window's posterior mean: what a z-blind decoder would do as well with
    events_total = x.shape[-1]
    nats_own = -model.decoder_log_prob(x, mean[None]).mean().item() / events_total
    nats_other = -model.decoder_log_prob(x, other[None]).mean().item() / events_total
    recon = model.decode_latents(mean, temperature=0.0)
    events = (recon == x).float().mean().item()
    events_other = (model.decode_latents(other, temperature=0.0) == x).float().mean().item()
    bars = (recon == x).reshape(len(x), -1, tok.bar_steps).all(-1).float().mean().item()
    step_changes, end_changes = [], []
    for i in range(min(pairs, len(x) // 2)):
        z = slerp(mean[2 * i], mean[2 * i + 1], torch.linspace(0, 1, 7))
        path = model.decode_latents(z, temperature=0.0).reshape(7, -1)
        pieces = [tok.decode(t.numpy()) for t in path]
        step_changes.append(np.mean([notes_changed(a, b) for a, b in zip(pieces, pieces[1:], strict=False)]))
        end_changes.append(notes_changed(pieces[0], pieces[-1]))
    n = 8
    start = time.perf_counter()
    model.sample(n, generator=torch.Generator().manual_seed(0))
    per_bar = (time.perf_counter() - start) / (n * model.num_segments)
    return {"steps": int(model.steps_trained), "kl_nats_per_window": model.kl(mean, log_var).mean().item(),
            "reconstruction_nats_per_event": nats_own, "reconstruction_nats_per_event_other_z": nats_other,
            "reconstruction_event_accuracy_other_z": events_other,
            "reconstruction_event_accuracy": events, "reconstruction_bar_accuracy": bars,
            "interpolation_notes_changed_per_step": float(np.mean(step_changes)) if step_changes else math.nan,
            "interpolation_notes_changed_end_to_end": float(np.mean(end_changes)) if end_changes else math.nan,
            "prior_sampling_seconds_per_bar_under_load": per_bar, "windows": len(x)}


@torch.no_grad()
def lm_seconds_per_bar(run, bar_tokens: int = 16) -> float:
    model = run.load_model()
    n = 8
    start = time.perf_counter()
    model.sample(n, generator=torch.Generator().manual_seed(0))
    return (time.perf_counter() - start) / (n * model.event_shape[-1] / bar_tokens)


def table(report: dict) -> str:
    lines = ["| encoding | model | held-out nats/event | bound? | params | steps | train s (under load) |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        kind = f"upper bound (IWAE k={r.get('iwae_samples')})" if r["likelihood"] == "bound" else "exact"
        lines.append(f"| {r['encoding']} | {r['model']} | {r['nats_per_event']:.3f} | {kind} | "
                     f"{r['params']:,} | {r['steps']} | {r['train_seconds_under_load']} |")
    runs = report.get("vae_runs", [])
    if not runs:
        return "\n".join(lines)
    rows = [("KL term, nats per window", "{:.2f}", "kl_nats_per_window"),
            ("reconstruction, nats/event (own z)", "{:.3f}", "reconstruction_nats_per_event"),
            ("reconstruction, nats/event (another window's z)", "{:.3f}", "reconstruction_nats_per_event_other_z"),
            ("reconstruction accuracy, events (own z)", "{:.3f}", "reconstruction_event_accuracy"),
            ("reconstruction accuracy, events (another window's z)", "{:.3f}",
             "reconstruction_event_accuracy_other_z"),
            ("reconstruction accuracy, whole bars", "{:.3f}", "reconstruction_bar_accuracy"),
            ("interpolation: notes changed per step (7 steps)", "{:.3f}", "interpolation_notes_changed_per_step"),
            ("interpolation: notes changed end to end", "{:.3f}", "interpolation_notes_changed_end_to_end"),
            ("prior sampling, ms per bar (under load)", "{:.1f}", "prior_sampling_seconds_per_bar_under_load")]
    lines += ["", "| sequence VAE (melody, 4 bars) |" + " |".join(f" {v['steps']} steps" for v in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for label, fmt, key in rows:
        scale = 1000 if key.endswith("per_bar_under_load") else 1
        cells = [fmt.format(scale * v.get(key, math.nan)) for v in runs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tf = report.get("transformer_seconds_per_bar_under_load")
    if tf is not None:
        lines += ["", f"Transformer sampling, ms per bar of melody (under load): {1000 * tf:.1f}"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600, help="training steps per model (default 600)")
    p.add_argument("--remi", action="store_true", help="also train the language models on REMI (slower)")
    p.add_argument("--models", default="unigram,rnn_lm,transformer,sequence_vae",
                   help="comma-separated subset to run; a subset writes music-PART.json (--merge joins them)")
    p.add_argument("--merge", nargs="+", metavar="PART", help="join part files music-PART.json (`current`: "
                   "music.json itself) into music.json / music.md (later parts replace rows of the same encoding, "
                   "model and steps)")
    p.add_argument("--part-suffix", default="", help="appended to a subset's part-file name (e.g. -600)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 steps per model, few windows")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; see the module docstring)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    if a.merge:
        write(out, "music", merge([json.loads(part_path(out, m).read_text()) for m in a.merge]))
        return
    chosen = a.models.split(",")
    steps, windows, pairs = (3, 8, 2) if a.quick else (a.steps, 120, 20)
    torch.manual_seed(0)
    rows: list[dict] = []
    report: dict = {"steps": steps, "published": PUBLISHED}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for encoding in ("melody", "remi"):
            if encoding == "remi" and not ("unigram" in chosen or (a.remi and {"rnn_lm", "transformer"} & set(chosen))):
                continue  # nothing to score on REMI: do not tokenise it
            splits = load_splits("chorales", encoding=encoding, context=CONTEXT[encoding])
            if "unigram" in chosen:
                rows.append({"encoding": encoding, "model": "unigram",
                             "nats_per_event": unigram_nats(splits["train"], splits["test"]), "likelihood": "exact",
                             "params": splits["train"].levels, "steps": 0, "train_seconds_under_load": 0.0})
            for model in [m for m in ("rnn_lm", "transformer") if m in chosen and (encoding == "melody" or a.remi)]:
                row, run = train_and_score(root, encoding, model, steps, LM_SIZES[model])
                rows.append(row)
                if encoding == "melody" and model == "transformer":
                    report["transformer_seconds_per_bar_under_load"] = lm_seconds_per_bar(run)
            if encoding == "melody" and "sequence_vae" in chosen:
                quick_k = ["model.iwae_samples=4"] if a.quick else []
                warm_up = [f"model.kl_anneal_steps={max(steps // 2, 1)}"]
                row, run = train_and_score(root, encoding, "sequence_vae", steps, VAE_SIZE + warm_up + quick_k)
                rows.append(row)
                report["vae_runs"] = [vae_figures(run, splits["test"], windows, pairs)]
        report["rows"] = rows
    subset = "" if set(chosen) >= {"unigram", "rnn_lm", "transformer", "sequence_vae"} else "-" + "+".join(chosen)
    write(out, f"music{subset}{a.part_suffix}{'-quick' if a.quick else ''}", report)


def merge(parts: list[dict]) -> dict:
    """Join part reports: a later part's row replaces an earlier one with the same encoding, model and steps;
    VAE figures are kept one per step count."""
    report: dict = {k: v for part in parts for k, v in part.items() if k not in ("rows", "vae", "vae_runs")}
    rows: dict[tuple, dict] = {}
    vae_runs: dict[int, dict] = {}
    for part in parts:
        rows.update({(r["encoding"], r["model"], r["steps"]): r for r in part["rows"]})
        vae_runs.update({v["steps"]: v for v in part.get("vae_runs", [])})
    order = {m: i for i, m in enumerate(("unigram", "rnn_lm", "transformer", "sequence_vae"))}
    report["rows"] = sorted(rows.values(), key=lambda r: (r["encoding"] != "melody", order.get(r["model"], 9),
                                                          r["steps"]))
    report["vae_runs"] = [vae_runs[k] for k in sorted(vae_runs)]
    return report


def part_path(out: Path, part: str) -> Path:
    """The file of part ``part``: ``music-PART.json``, or ``music.json`` for ``current``."""
    return out / ("music.json" if part == "current" else f"music-{part}.json")


def write(out: Path, stem: str, report: dict) -> None:
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text(table(report) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
