"""``chainrule adversarial``: SeqGAN-style fine-tuning of a trained text or music run into a new run."""

from __future__ import annotations

import argparse

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule adversarial runs/shakespeare-transformer --steps 300 --out runs/shakespeare-adv
  chainrule adversarial runs/shakespeare-transformer --steps 300 --mle-weight 0 --out runs/pure-adv
  chainrule eval runs/shakespeare-adv                 # the new run works with every command
  chainrule generate runs/shakespeare-adv --prompt "ROMEO:" """


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    p = sub.add_parser("adversarial", help="fine-tune a text or music run adversarially (SeqGAN) into a new run",
                       formatter_class=fmt, epilog=EXAMPLES,
                       description="Pre-train a CNN discriminator (real training windows against samples), then\n"
                                   "alternate it with a REINFORCE update of the language model (reward: the\n"
                                   "discriminator's probability that a whole sample is real, minus a moving-average\n"
                                   "baseline), plus MLE-WEIGHT x the likelihood loss. Writes a new run directory that\n"
                                   "eval, generate, serve and export accept; RUN is only read.")
    options.add_run_argument(p, "the trained text or music run to start from (only read)")
    p.add_argument("--out", required=True, metavar="RUN2", help="the new run directory (must not exist or be empty)")
    p.add_argument("--steps", type=int, default=200, help="generator updates (default 200)")
    p.add_argument("--batch-size", type=int, default=32, help="samples and real windows per step (default 32)")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per sample and real window (default 64)")
    p.add_argument("--lr", type=float, default=1e-4, help="generator learning rate, Adam (default 1e-4)")
    p.add_argument("--d-lr", type=float, default=1e-3, help="discriminator learning rate, Adam (default 1e-3)")
    p.add_argument("--d-pretrain", type=int, default=100,
                   help="discriminator-only updates before the generator's first (default 100)")
    p.add_argument("--d-steps", type=int, default=1, help="discriminator updates per generator update (default 1)")
    p.add_argument("--mle-weight", type=float, default=1.0,
                   help="weight of the per-token NLL of real windows in the generator loss; 0 = purely adversarial "
                        "(default 1)")
    p.add_argument("--baseline-decay", type=float, default=0.9, help="decay of the reward baseline (default 0.9)")
    options.add_temperature(p, "sampling temperature of the generator's samples (default 1)")
    options.add_seed(p)
    options.add_device(p, help="torch device: cpu, cuda, ... (default: cuda when available, else cpu)")


def run(a: argparse.Namespace) -> None:
    from chainrule.adversarial import adversarial_finetune

    new = adversarial_finetune(a.run, a.out, device=a.device, steps=a.steps, batch_size=a.batch_size,
                               seq_len=a.seq_len, lr=a.lr, d_lr=a.d_lr, d_steps=a.d_steps, d_pretrain=a.d_pretrain,
                               mle_weight=a.mle_weight, baseline_decay=a.baseline_decay, temperature=a.temperature,
                               seed=a.seed)
    print(f"run written to {new.path}")
