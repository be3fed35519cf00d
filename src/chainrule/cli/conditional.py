"""``chainrule upscale`` and ``chainrule colorize``: sample a conditional image run given a picture."""

from __future__ import annotations

import argparse

from chainrule.cli import options

EXAMPLES = {
    "upscale": """examples:
  chainrule train upscale4:photos conditional_pixelcnn --set train.steps=2000 --run runs/photos-x4
  chainrule upscale runs/photos-x4 patch.png --samples 4 --out upscaled.png    # a 32x32 original: shown too
  chainrule upscale runs/photos-x4 small.png --samples 8 --temperature 0.8     # an 8x8 low-resolution picture""",
    "colorize": """examples:
  chainrule train colorize:photos conditional_pixelcnn --set train.steps=2000 --run runs/photos-colour
  chainrule colorize runs/photos-colour patch.png --samples 4 --out coloured.png  # a colour original: shown too
  chainrule colorize runs/photos-colour grey.png --samples 8 --seed 1             # a grey picture""",
}
DESCRIPTIONS = {
    "upscale": "Sample high-resolution versions of a picture with a run trained on upscale:DATASET (or "
               "upscale4:DATASET) data. The picture is the original at the run's size (its low-resolution version "
               "is derived as in training, and the original is shown last) or the low-resolution picture itself.",
    "colorize": "Sample colour versions of a picture with a run trained on colorize:DATASET data. The picture is a "
                "colour original at the run's size (its grey version is the input, and the original is shown last) "
                "or a grey picture.",
}


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    for command, what in (("upscale", "super-resolution"), ("colorize", "colorization")):
        p = sub.add_parser(command, help=f"{what}: sample a conditional image run given a picture", formatter_class=fmt,
                           description=DESCRIPTIONS[command] + " Writes one PNG row: the input, the samples and, "
                           "when known, the original.", epilog=EXAMPLES[command])
        options.add_run_argument(p, f"run directory of a run trained on {command}:DATASET data")
        p.add_argument("picture", help="PNG/JPEG picture (grey or RGB)")
        p.add_argument("--samples", type=int, default=4, metavar="N", help="samples to draw (default 4)")
        options.add_out(p, f"{command}d.png", "output PNG (default %(default)s)")
        options.add_temperature(p)
        options.add_seed(p)
        options.add_device(p)


def run(a: argparse.Namespace) -> None:
    from chainrule.conditional import restore

    result = restore(a.run, a.picture, a.command, samples=a.samples, out=a.out, temperature=a.temperature,
                     seed=a.seed, device=a.device)
    shown = "input, samples, original" if result.original_known else "input, samples"
    print(f"wrote {result.path} ({shown})")
