"""The VAE with a factorised decoder beside the VAE with a PixelCNN decoder (``pixel_vae``), at the families budget.

Trains both on one dataset with the settings of bench/families.py (same steps, batch size, warm-up) and reports the
test NLL bound (IWAE) and the KL term of the ELBO, whose mean tells whether the autoregressive decoder still uses
the latent (posterior collapse: KL near zero). Quality figures only; the training seconds depend on the load.

    .venv/bin/python bench/vae_decoders.py                    # digits, 500 steps
    .venv/bin/python bench/vae_decoders.py --quick            # tiny models, 5 steps: checks that it runs

Writes bench/results/vae_decoders.json (``-quick`` for --quick) and trains under bench/runs/vae_decoders/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from families import overrides_for

from chainrule import api

HERE = Path(__file__).resolve().parent
MODELS = ["vae", "pixel_vae"]


@torch.no_grad()
def mean_kl(run: Path) -> float:
    """Mean KL(q(z | x) || p(z)) over the test split, nats per image."""
    opened = api.open_run(run)
    model = opened.load_model().eval()
    x, _ = api.load_data(opened.config["data"], opened.path)["test"].all()
    mean, log_var = model.posterior(x)
    return float((0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny models, 5 steps")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    steps, suffix = (5, "-quick") if a.quick else (a.steps, "")
    root = HERE / "runs" / f"vae_decoders{suffix}"
    rows = []
    for name in MODELS:
        run = root / f"{a.dataset}-{name}"
        shutil.rmtree(run, ignore_errors=True)
        start = time.perf_counter()
        api.train(a.dataset, name, overrides=overrides_for(name, steps, a.quick), run_dir=run)
        seconds = time.perf_counter() - start
        result = api.evaluate(run)
        rows.append({"model": name, "nll_nats_bound": round(result["nll_nats"], 3),
                     "bpd_bound": round(result["bpd"], 4),
                     "kl_nats": round(mean_kl(run), 3), "params": result["params"],
                     "train_seconds_under_load": round(seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    out = HERE / "results" / f"vae_decoders{suffix}.json"
    settings = {"dataset": a.dataset, "steps": steps, "batch_size": "the image default (64)", "split": "test",
                "iwae_samples": "the model default (100)"}
    out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(HERE.parent).as_posix()}")


if __name__ == "__main__":
    main()
