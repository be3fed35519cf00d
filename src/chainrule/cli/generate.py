"""``chainrule generate``: continue a text prompt with a trained language model, streaming to the terminal; for a
music run, write MIDI (with a piano roll, and a WAV with ``--wav``)."""

from __future__ import annotations

import argparse
import re
import sys

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule generate runs/shakespeare-transformer --prompt "ROMEO:" --max-new-tokens 300
  chainrule generate runs/gpt2 --prompt "The meaning of life is" --temperature 0.8 --top-k 50 --top-p 0.95 \\
      --repetition-penalty 1.2 --no-repeat-ngram 3 --stop '\\n\\n' --seed 1 --num-samples 3
  chainrule generate runs/chorales-transformer --out song.mid --wav      # music: song.mid, song.png, song.wav"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    g = sub.add_parser("generate", help="continue a text prompt with a trained language model", formatter_class=fmt,
                       description="Sample text from a text run, streaming it as it is produced. Tokens are drawn "
                                   "after the repetition penalty, no-repeat-n-gram ban, temperature, top-k and "
                                   "top-p, in that order. The prompt is printed first (unless --no-echo).",
                       epilog=EXAMPLES)
    options.add_run_argument(g, "run directory of a text model")
    g.add_argument("--prompt", default="", help="text to continue (default: empty, unconditional)")
    g.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate per sample (default 200)")
    options.add_temperature(g, "logit temperature; 0 = greedy (default 1)")
    g.add_argument("--top-k", type=int, default=None, help="keep only the K most likely tokens")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass, after top-k (default 1 = off)")
    g.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="CTRL-style penalty on tokens already in the text (default 1 = off)")
    g.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                   help="never repeat an N-gram of tokens (default 0 = off)")
    g.add_argument("--stop", nargs="+", action="extend", default=[], metavar="STR",
                   help="end a sample before the first occurrence of STR (escapes \\n, \\t, \\\\ understood)")
    options.add_seed(g)
    options.add_num_samples(g, 1, "samples to generate; each printed under a header (default 1)")
    options.add_no_cache(g, "re-run the full network for every token")
    g.add_argument("--no-echo", action="store_true", help="print only the generated text, not the prompt")
    g.add_argument("--out", default=None, metavar="FILE.mid",
                   help="music runs: MIDI file to write (default song.mid; several samples: song-1.mid, ...), "
                        "with a piano-roll PNG beside it")
    g.add_argument("--wav", action="store_true", help="music runs: also render a WAV with fluidsynth")


def unescape(s: str) -> str:
    """``\\n``, ``\\t`` and ``\\\\`` in a command-line string -> newline, tab, backslash (shells pass them
    literally)."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], s)


def run(a: argparse.Namespace) -> None:
    from chainrule import api

    if api.open_run(a.run).kind.value == "music":
        from chainrule.music import generate_music

        for path in generate_music(a.run, a.out or "song.mid", n=a.num_samples, temperature=a.temperature,
                                   seed=a.seed, wav=a.wav):
            print(f"wrote {path}")
        return

    generation = {"max_new_tokens": a.max_new_tokens, "temperature": a.temperature, "top_k": a.top_k,
                  "top_p": a.top_p, "repetition_penalty": a.repetition_penalty,
                  "no_repeat_ngram_size": a.no_repeat_ngram, "stop": [unescape(s) for s in a.stop], "seed": a.seed}
    echo = "" if a.no_echo else a.prompt
    if a.num_samples == 1:
        pieces = api.generate(a.run, a.prompt, use_cache=not a.no_cache, **generation)
        sys.stdout.write(echo)
        sys.stdout.flush()
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts = api.generate_texts(a.run, a.prompt, num_samples=a.num_samples, use_cache=not a.no_cache, **generation)
    for i, text in enumerate(texts, 1):
        print(f"=== sample {i}/{len(texts)} ===")
        print(echo + text, flush=True)
