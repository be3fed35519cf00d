"""Score nanoGPT's and chainrule's trained character models on the same held-out characters.

The two training scripts report validation loss differently: nanoGPT averages 20 random batches of the val split
in which every target has at least one character of context, chainrule averages non-overlapping 64-character
windows of the val split (all of them, or with ``train.eval_max_windows`` one fixed seeded subset) whose first
character is predicted from no context at all (the start vector). Neither number is wrong, but they are not the
same quantity. This script removes the differences: it cuts the whole val split (the last 10% of the characters,
the same rule on both sides) into the same non-overlapping 64-character windows and scores, for each, characters
2..64 given the characters before them in the window, with each side's final model. It also reports chainrule's
all-64-positions figure, the quantity its own evaluation prints, here over every window of the split.

    python bench/peers_val.py --nanogpt WORK/nanoGPT --run WORK/chainrule-run --corpus input.txt

Prints one JSON line (nats per character). nanoGPT is imported from its own folder (``model.py``), which is how
its ``sample.py`` loads a checkpoint; chainrule itself never imports it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from chainrule import api
from chainrule.modalities.text.data.text import split_text

WINDOW = 64


def windows(ids: list[int]) -> torch.Tensor:
    n = len(ids) // WINDOW
    return torch.tensor(ids[: n * WINDOW], dtype=torch.long).view(n, WINDOW)


@torch.no_grad()
def chainrule_scores(run: Path, text: str, batch: int = 256) -> tuple[float, float]:
    """(mean NLL of positions 2..64, mean NLL of all 64 positions) in nats per character."""
    model, tok = api.load_text_run(run, device="cpu")
    w = windows(list(tok.encode(text)))
    cond, total = [], []
    for i in range(0, len(w), batch):
        lp = model.log_prob_positions(w[i:i + batch].unsqueeze(1)).flatten(1)
        cond.append(-lp[:, 1:])
        total.append(-lp)
    return torch.cat(cond).mean().item(), torch.cat(total).mean().item()


@torch.no_grad()
def nanogpt_score(nano: Path, text: str, batch: int = 256) -> float:
    """Mean NLL of positions 2..64 in nats per character with nanoGPT's saved checkpoint."""
    sys.path.insert(0, str(nano))
    from model import GPT, GPTConfig  # nanoGPT's own model file

    ckpt = torch.load(nano / "out" / "ckpt.pt", map_location="cpu", weights_only=False)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    meta = pickle.loads((nano / "data" / "shakespeare_char" / "meta.pkl").read_bytes())
    w = windows([meta["stoi"][c] for c in text])
    losses = []
    for i in range(0, len(w), batch):
        x = w[i:i + batch]
        logits, _ = model(x[:, :-1].contiguous(), x[:, 1:].contiguous())
        losses.append(F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none"))
    return torch.cat(losses).mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nanogpt", type=Path, required=True, help="nanoGPT working copy with out/ckpt.pt")
    p.add_argument("--run", type=Path, required=True, help="chainrule run directory")
    p.add_argument("--corpus", type=Path, required=True, help="the corpus both were trained on")
    a = p.parse_args()
    val = split_text(a.corpus.read_text(encoding="utf-8"))["val"]
    ours, ours_all = chainrule_scores(a.run, val)
    print(json.dumps({"val_chars_scored": len(val) // WINDOW * (WINDOW - 1), "nanoGPT": nanogpt_score(a.nanogpt, val),
                      "chainrule": ours, "chainrule_all_positions": ours_all}))


if __name__ == "__main__":
    main()
