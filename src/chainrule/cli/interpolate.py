"""``chainrule interpolate``: walk a sequence VAE's latent space between two MIDI files."""

from __future__ import annotations

import argparse

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule train chorales sequence_vae --set data.encoding=melody --run runs/chorales-vae
  chainrule interpolate runs/chorales-vae a.mid b.mid --steps 7 --out interp/
  chainrule interpolate runs/chorales-vae a.mid b.mid --temperature 0.5 --seed 3 --out interp/"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    p = sub.add_parser("interpolate", help="decode the latent path between two MIDI files (sequence VAE runs)",
                       formatter_class=fmt,
                       description="Encode the first window of each MIDI file with a sequence-VAE music run, "
                                   "interpolate spherically between the two posterior means and decode each step. "
                                   "Writes OUT/step-1.mid .. step-N.mid and OUT/interpolation.png (piano rolls), "
                                   "and prints the fraction of notes that change between consecutive steps.",
                       epilog=EXAMPLES)
    options.add_run_argument(p, "run directory of a sequence-VAE music run")
    p.add_argument("first", help="MIDI file at the start of the path")
    p.add_argument("second", help="MIDI file at the end of the path")
    p.add_argument("--steps", type=int, default=7, help="points on the path, both ends included (default 7)")
    options.add_out(p, "interpolation", "output folder (default interpolation/)", metavar="DIR")
    options.add_temperature(p, "decoder temperature; 0 = the most probable token at each step (default 0)")
    p.set_defaults(temperature=0.0)
    options.add_seed(p)


def run(a: argparse.Namespace) -> None:
    from chainrule.music import interpolate

    result = interpolate(a.run, a.first, a.second, a.out, steps=a.steps, temperature=a.temperature, seed=a.seed)
    for path in result["files"]:
        print(f"wrote {path}")
    changed = ", ".join(f"{c:.2f}" for c in result["notes_changed"])
    print(f"fraction of notes changed per step: {changed}")
