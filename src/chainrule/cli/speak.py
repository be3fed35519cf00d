"""``chainrule tts-train`` and ``chainrule speak``: train the text-to-mel model on ``speech``; say a text with it."""

from __future__ import annotations

import argparse

from chainrule.cli import options

TRAIN_EXAMPLES = """examples:
  chainrule tts-train --run runs/tts --set train.max_seconds=600
  chainrule tts-train --run runs/tts-small --set model.decoder_rnn=64 --set data.n_mels=32"""

SPEAK_EXAMPLES = """examples:
  chainrule speak runs/tts "Please enter your password." --out hello.wav
  chainrule speak runs/tts "Thank you for calling." --out t.wav --max-seconds 4 --seed 1
  chainrule speak runs/tts "Thank you for calling." --out t.wav --window 3   # attention may only move forward
  chainrule train speech-mel wavenet --run runs/vocoder --set model.local_channels=40 --set model.local_hop=100 \\
      --set data.crop=1024 --set train.batch_size=8 --set train.steps=5000 --set output.samples=0
  chainrule speak runs/tts "Goodbye." --out bye.wav --vocoder runs/vocoder

Writes OUT.wav (16-bit, the run's sample rate), OUT.alignment.png (decoder steps against characters: a good
alignment is a rising diagonal) and OUT.spectrogram.png. Characters outside the model's alphabet (a-z, 0-9,
space and ' . , ? ! -) are dropped with a warning; a text with none left is an error."""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    t = sub.add_parser("tts-train", help="train the Tacotron-style text-to-mel model on the speech prompts",
                       formatter_class=fmt, epilog=TRAIN_EXAMPLES,
                       description="Train a text-to-mel model (character encoder, location-sensitive attention, "
                                   "autoregressive mel decoder with a stop flag) on the 'speech' prompts and their "
                                   "transcripts. Options: data.n_mels/hop/win/n_fft/max_seconds, model sizes, "
                                   "model.postnet, train.*. Defaults: 2.8 M parameters with a post-net, 3,400 steps "
                                   "of batch 16 (74 minutes measured on a shared 2-core CPU); the final weights are kept "
                                   "(train.keep_weights=final), since the teacher-forced validation NLL stops "
                                   "improving long before synthesis does")
    options.add_config(t)
    options.add_set(t)
    options.add_run_option(t, "run directory (default: runs/speech-tacotron-TIME)")
    s = sub.add_parser("speak", help="synthesise speech from text with a text-to-speech run", formatter_class=fmt,
                       epilog=SPEAK_EXAMPLES,
                       description="Synthesise mel frames from TEXT with a text-to-speech RUN and vocode them with "
                                   "Griffin-Lim (default) or a WaveNet run locally conditioned on mel frames.")
    s.add_argument("run_dir", metavar="RUN", help="a run written by 'chainrule tts-train'")
    s.add_argument("text", help="what to say")
    s.add_argument("--out", required=True, help="the WAV file to write (PNGs are written beside it)")
    s.add_argument("--max-seconds", type=float, default=10.0, help="stop after this much audio (default 10)")
    s.add_argument("--seed", type=int, default=0, help="seed of the prenet's dropout and Griffin-Lim's phases")
    s.add_argument("--griffin-lim-iters", type=int, default=32, help="Griffin-Lim iterations (default 32)")
    s.add_argument("--window", type=int, default=0, help="forward attention constraint: each step attends from the "
                                                         "last step's character to this many after it (0 = off)")
    s.add_argument("--vocoder", metavar="RUN2", help="vocode with this WaveNet run (trained on speech-mel) instead "
                                                     "of Griffin-Lim")


def run(a: argparse.Namespace) -> None:
    from chainrule import tts

    if a.command == "tts-train":
        run_ = tts.train_tts(a.config, a.overrides, a.run)
        print(f"run written to {run_.path}")
        return
    result = tts.speak(a.run_dir, a.text, a.out, max_seconds=a.max_seconds, seed=a.seed,
                       griffin_lim_iters=a.griffin_lim_iters, vocoder=a.vocoder, window=a.window)
    note = "" if result["stopped"] else f" (no stop flag before --max-seconds {a.max_seconds:g})"
    print(f"wrote {result['wav']} ({result['seconds']:.2f} s{note}), {result['alignment']}, "
          f"{result['spectrogram']}")
