"""``chainrule sample`` and ``chainrule complete``: image grids drawn from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from chainrule.cli import options

SAMPLE_EXAMPLES = """examples:
  chainrule sample runs/digits-gated -n 64 --out grid.png
  chainrule sample runs/cond -n 16 --class 3 --temperature 0.8 --out threes.png
  chainrule sample runs/speech-wavenet --seconds 2 --out x.wav     # an audio run writes a WAV
  chainrule sample runs/speech-wavenet --seconds 30 --engine compiled --out long.wav
  chainrule sample runs/airpassengers-vae -n 8 --out windows.csv   # a series VAE: CSV + windows.png"""
COMPLETE_EXAMPLES = "example:\n  chainrule complete runs/digits-gated -n 16 --out completions.png"


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    s = sub.add_parser("sample", help="draw images (a PNG grid) or audio (a WAV) from a run", formatter_class=fmt,
                       description="Ancestral sampling from a trained run. Audio runs write a 16-bit WAV at the "
                                   "run's rate (-n waveforms, one after another); a series sequence VAE writes "
                                   "-n windows per series from its prior (CSV, default 8) and a chart beside it.",
                       epilog=SAMPLE_EXAMPLES)
    options.add_run_argument(s)
    options.add_num_samples(s, None, "number of samples (default 64 images, or 1 waveform)")
    options.add_out(s, "samples.png", "output PNG (default samples.png)")
    s.add_argument("--class", dest="cls", help="class index or name (class-conditional models)")
    options.add_temperature(s)
    options.add_seed(s)
    options.add_no_cache(s)
    s.add_argument("--seconds", type=float, default=None,
                   help="audio runs: seconds of audio per waveform (default 2; -n defaults to 1)")
    s.add_argument("--engine", choices=("auto", "eager", "static", "compiled"), default="auto",
                   help="audio runs: how each step runs, same audio for a seed: static (fused), compiled (fastest "
                        "per sample after tens of seconds of compiling), eager (the model's own step); default "
                        "auto: compiled from 10 s of audio in total, else static")

    c = sub.add_parser("complete", help="fill in the lower half of test images", formatter_class=fmt,
                       description="Conditional generation: keep the top half of test images and sample the "
                                   "rest. The grid shows originals, the given halves and the completions.",
                       epilog=COMPLETE_EXAMPLES)
    options.add_run_argument(c)
    options.add_num_samples(c, 16, "images to complete (default 16)")
    options.add_out(c, "completions.png", "output PNG (default completions.png)")
    options.add_split(c)
    options.add_seed(c)
    options.add_temperature(c)


def _sample(a: argparse.Namespace) -> None:
    from chainrule import api
    from chainrule.modalities.image.grids import save_grid

    trained = api.open_run(a.run)
    if trained.kind.value == "timeseries":  # a latent model of windows, drawn from its prior: CSV + chart
        from chainrule.modalities.series.latent import sample_run

        out = "samples.csv" if a.out == "samples.png" else a.out
        plot = str(Path(out).with_suffix(".png"))
        frame = sample_run(trained, 8 if a.num_samples is None else a.num_samples, seed=a.seed,
                           temperature=a.temperature, out=out, plot=plot)
        print(f"wrote {out} ({frame['sample'].nunique()} windows per series) and {plot}")
        return
    if trained.kind.value == "music":  # a token model or a sequence VAE (drawn from its prior): MIDI files
        from chainrule.music import generate_music

        out = "samples.mid" if a.out == "samples.png" else a.out
        for path in generate_music(trained, out, n=a.num_samples or 1, temperature=a.temperature, seed=a.seed):
            print(f"wrote {path}")
        return
    if trained.kind.value == "audio":
        n = 1 if a.num_samples is None else a.num_samples
        seconds = 2.0 if a.seconds is None else a.seconds
        x = api.sample_audio(trained, seconds, n=n, cls=a.cls, temperature=a.temperature, seed=a.seed,
                             use_cache=not a.no_cache, engine=a.engine)
        out = "samples.wav" if a.out == "samples.png" else a.out
        print(f"wrote {api.write_run_wav(trained, x, out)}")
        return
    n = 64 if a.num_samples is None else a.num_samples
    x = api.sample(trained, n, cls=a.cls, temperature=a.temperature, seed=a.seed, use_cache=not a.no_cache)
    print(f"wrote {save_grid(x, trained.spec['levels'], a.out)}")


def _complete(a: argparse.Namespace) -> None:
    import torch

    from chainrule import api
    from chainrule.modalities.image.grids import save_grid

    trained = api.open_run(a.run)
    orig, given, out = api.complete(trained, n=a.num_samples, split=a.split, seed=a.seed, temperature=a.temperature)
    grid = torch.cat([orig, given, out])
    print(f"wrote {save_grid(grid, trained.spec['levels'], a.out, nrow=orig.shape[0])} "
          "(rows: originals, given top halves, completions)")


def run(a: argparse.Namespace) -> None:
    {"sample": _sample, "complete": _complete}[a.command](a)
