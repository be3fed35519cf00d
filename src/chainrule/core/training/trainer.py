"""The training loop of every modality: AdamW + warm-up/cosine, EMA, evaluation, early stopping, exact resume, DDP.

Run directory: ``metrics.jsonl``, ``best.safetensors`` (best validation NLL, or the final weights when there is no
validation set or ``keep_weights`` is ``final``; EMA weights when EMA is on),
``checkpoints/step-NNNNNN.{safetensors,ema.safetensors,state.pt}`` and ``summary.json``. Without a run directory
the fit happens in memory and writes nothing (backtests and stability checks fit many throw-away models).
"""

from __future__ import annotations

import inspect
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from chainrule.core.errors import CheckpointError, ConfigError, TrainingDiverged
from chainrule.core.evaluation.metrics import IndexedDataset, bits_per_dim, conditioning
from chainrule.core.runs.files import BEST_WEIGHTS, CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE
from chainrule.core.training.batching import batch_at, epoch_permutation
from chainrule.core.training.checkpoint import (
    CheckpointFiles,
    apply_weights,
    atomic_write_bytes,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    remove_stale_temporaries,
    save_weights,
    write_checkpoint,
)
from chainrule.core.training.config import TrainConfig
from chainrule.core.training.distributed import DistContext, distributed_context, env_world_size, wrap_for_training
from chainrule.core.training.ema import EMA
from chainrule.core.training.eval_subset import eval_indices
from chainrule.core.training.metrics import MetricsLog, MetricsSink, finite_or_none
from chainrule.core.training.rng import rng_state, seed_everything, set_rng_state
from chainrule.core.training.schedule import lr_factor
from chainrule.core.training.validation import mean_nll

#: options whose change between a run and its resume alters the trajectory (or which weights are kept as best)
_TRAJECTORY_KEYS = ("steps", "batch_size", "lr", "weight_decay", "betas", "warmup_steps", "min_lr_ratio",
                    "grad_clip", "ema", "seed", "curriculum", "eval_max_windows", "keep_weights")


@dataclass
class Progress:
    """Loop counters and bookkeeping saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val_nll: float | None = None
    best_step: int | None = None
    last_val_nll: float | None = None
    last_eval_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    done: bool = False
    reason: str | None = None
    elapsed: float = 0.0
    window_nll: float = 0.0
    window_grad_norm: float = 0.0
    window_count: int = 0
    last_train_nll: float | None = None

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Progress:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def grad_norm(params: list[nn.Parameter], clip: float) -> Tensor:
    """Total L2 norm of the gradients, clipping them to ``clip`` when ``clip > 0``."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))


class Trainer:
    """Fit ``model`` on ``train_set``, evaluating on ``val_set`` (may be None), writing into ``run_dir``.

    The model's ``loss(x, cond)`` is the objective; ``cond`` is what the dataset's ``get`` returns beside
    ``x`` (class labels for class-conditional models, a :class:`~chainrule.core.contract.Condition` as it is).
    Models with ``closed_form = True`` and a ``fit_counts(dataset)`` method are fitted by that one call.
    With ``resume=True`` the newest complete checkpoint in ``run_dir`` is loaded and training continues
    exactly where it stopped. ``run_dir=None`` fits in memory and writes nothing. ``summary_extra``: facts
    the caller wants in the summary (e.g. what the model and data were). ``sinks`` receive every metrics record
    too (e.g. a TensorBoard writer; the caller closes them). Launch under ``torchrun`` for data-parallel training.
    """

    def __init__(self, model: nn.Module, train_set: IndexedDataset, val_set: IndexedDataset | None,
                 cfg: TrainConfig, run_dir: str | Path | None, resume: bool = False,
                 summary_extra: dict[str, Any] | None = None, sinks: Sequence[MetricsSink] = ()) -> None:
        self.model = model
        self.train_set = train_set
        self.val_set = val_set
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self.summary_extra = dict(summary_extra or {})
        self.closed_form = bool(getattr(model, "closed_form", False)) and callable(getattr(model, "fit_counts",
                                                                                              None))
        self._check()
        # the examples every evaluation scores (None = the whole split): fixed for the run, the same on every rank
        self.val_indices = (eval_indices(len(val_set), cfg.eval_max_windows, cfg.seed) if val_set is not None
                            else None)
        self.ctx = DistContext()
        self.device = torch.device("cpu")
        self.ema: EMA | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_checkpoint: CheckpointFiles | None = None
        self.sinks = list(sinks)
        self.metrics = MetricsLog(self._file(METRICS_FILE), sinks=self.sinks)

    def _file(self, name: str) -> Path | None:
        """``name`` inside the run directory; None for an in-memory fit."""
        return None if self.run_dir is None else self.run_dir / name

    # ------------------------------------------------------------------ checks
    def _check(self) -> None:
        cfg, n = self.cfg, len(self.train_set)
        world = env_world_size()
        if cfg.batch_size % world:
            raise ConfigError(f"train.batch_size ({cfg.batch_size}) is the global batch and must be divisible by "
                              f"the number of processes ({world})")
        if n == 0:
            raise ConfigError("the training set is empty")
        if not self.closed_form and n < cfg.batch_size:
            raise ConfigError(f"train.batch_size ({cfg.batch_size}) is larger than the training set ({n} examples)")
        if self.val_set is not None and len(self.val_set) == 0:
            raise ConfigError("the validation set is empty")
        if getattr(self.model, "num_classes", 0) > 0 and self.train_set.labels is None:
            raise ConfigError("the model is class-conditional but the training set has no labels")
        if cfg.curriculum:
            self._check_curriculum()
        if self.resume and self.run_dir is None:
            raise ConfigError("resuming needs the run directory that holds the checkpoints")
        if not self.resume and self.run_dir is not None and list_checkpoints(self.run_dir):
            raise CheckpointError(f"{self.run_dir}: already holds checkpoints; resume the run or choose a new "
                                  "run directory")

    def _check_curriculum(self) -> None:
        """A curriculum needs a dataset whose ``get`` takes ``length`` and lengths within the model's context."""
        try:
            takes_length = "length" in inspect.signature(self.train_set.get).parameters
        except (TypeError, ValueError):
            takes_length = False
        if not takes_length:
            raise ConfigError(f"train.curriculum needs a dataset that can cut shorter windows (a text dataset); "
                              f"{self.train_set.describe()} cannot")
        max_len = getattr(self.model, "max_len", None) or self.train_set.event_shape[-1]
        longest = max(length for _, length in self.cfg.curriculum)
        if longest > max_len:
            raise ConfigError(f"train.curriculum asks for a context length of {longest} but the model's context "
                              f"is {max_len}")

    def _dims(self, length: int | None) -> int:
        """Dimensions of one training example: the full event, or ``length`` positions under a curriculum."""
        return self.num_dims if length is None else math.prod(self.train_set.event_shape[:-1]) * length

    @property
    def num_dims(self) -> int:
        nd = getattr(self.model, "num_dims", None)
        return int(nd) if nd else math.prod(self.train_set.event_shape)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------ entry point
    def fit(self) -> dict[str, Any]:
        """Train (or fit in closed form), evaluate and checkpoint; return a summary dict."""
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        with distributed_context(self.cfg.device) as (ctx, device):
            self.ctx, self.device = ctx, device
            self.metrics = MetricsLog(self._file(METRICS_FILE), active=ctx.is_main, sinks=self.sinks)
            if ctx.is_main and self.run_dir is not None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                remove_stale_temporaries(self.run_dir / CHECKPOINTS_DIR)
                remove_stale_temporaries(self.run_dir)
            ctx.barrier()
            self.model.to(device)
            progress = self._fit_closed_form() if self.closed_form else self._fit_sgd()
            if self.val_set is None or not self.scores_likelihood or self.cfg.keep_weights == "final":
                self._save_best(progress)  # nothing to select by (or asked for): the final weights are kept
            summary = self._summary(progress)
            if ctx.is_main and self.run_dir is not None:
                atomic_write_bytes(self.run_dir / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode())
            return summary

    # ------------------------------------------------------------------ SGD
    def _make_optimizer(self) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable parameters")
        decay = [p for p in params if p.ndim >= 2]  # no weight decay on biases and gains
        rest = [p for p in params if p.ndim < 2]
        groups = [g for g in ({"params": decay, "weight_decay": self.cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}) if g["params"]]
        # one fused kernel per step instead of a dozen small operators per parameter (CPU and CUDA)
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=self.cfg.betas, fused=fused), params

    def _fit_sgd(self) -> Progress:
        cfg, ctx = self.cfg, self.ctx
        self.optimizer, params = self._make_optimizer()
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        if self.resume:
            p = self._restore()
        else:
            p = Progress()
            seed_everything(cfg.seed + ctx.rank)
            self.metrics.reset()
        train_module = wrap_for_training(self.model, ctx, self.device)
        if cfg.compile:
            train_module = torch.compile(train_module)
        n, bsz = len(self.train_set), cfg.batch_size
        per_epoch = n // bsz
        bar = tqdm(total=cfg.steps, initial=min(p.step, cfg.steps), desc="train", unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and ctx.is_main))
        t_start, elapsed0 = time.perf_counter(), p.elapsed
        perm, perm_epoch = None, None
        self.model.train()
        try:
            while p.step < cfg.steps and not p.done:
                if perm_epoch != p.epoch:
                    self.train_set.set_epoch(p.epoch)
                    perm, perm_epoch = epoch_permutation(n, cfg.seed, p.epoch), p.epoch
                lr = cfg.lr * lr_factor(p.step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
                length = cfg.context_length(p.step)  # a pure function of the step: resume stays exact
                t_step = time.perf_counter()
                loss_val, gnorm = self._step(train_module, params, batch_at(perm, bsz, p.batch_in_epoch), lr,
                                             length)
                if cfg.compile and "compile_seconds" not in self.summary_extra:  # the first step compiles
                    self.summary_extra["compile_seconds"] = round(time.perf_counter() - t_step, 3)
                if not (math.isfinite(loss_val) and math.isfinite(gnorm)):
                    self._diverged(p.step + 1, loss_val, gnorm)
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update(self.model)
                p.step += 1
                p.batch_in_epoch += 1
                if p.batch_in_epoch >= per_epoch:
                    p.epoch, p.batch_in_epoch = p.epoch + 1, 0
                p.window_nll += loss_val
                p.window_grad_norm += gnorm
                p.window_count += 1
                p.last_train_nll = loss_val
                bar.update(1)
                bar.set_postfix({"loss": f"{loss_val:.3f}",
                                 "bpd": f"{bits_per_dim(loss_val, self._dims(length)):.4f}"}, refresh=False)
                out_of_time = cfg.max_seconds > 0 and elapsed0 + time.perf_counter() - t_start >= cfg.max_seconds
                if p.step % cfg.log_every == 0 or p.step >= cfg.steps or out_of_time:  # the last steps are logged too
                    self._log_train(p, lr, per_epoch, length)
                if cfg.eval_every and p.step % cfg.eval_every == 0:
                    self._evaluate(p, per_epoch)
                if p.step >= cfg.steps or out_of_time:
                    if out_of_time and p.step < cfg.steps:
                        p.reason = f"time budget of {cfg.max_seconds:g} s reached at step {p.step}"
                    if p.last_eval_step != p.step:
                        self._evaluate(p, per_epoch)
                    p.done = True
                    p.reason = p.reason or f"completed {cfg.steps} steps"
                if p.done or (cfg.checkpoint_every and p.step % cfg.checkpoint_every == 0):
                    p.elapsed = elapsed0 + time.perf_counter() - t_start
                    self._checkpoint(p)
        finally:
            bar.close()
        return p

    def _step(self, train_module: nn.Module, params: list[nn.Parameter], batch: Tensor, lr: float,
              length: int | None = None) -> tuple[float, float]:
        """Forward/backward on this rank's slice of the global ``batch`` (windows of ``length`` positions under a
        curriculum); returns (global mean loss, grad norm). The optimiser step is left to the caller."""
        idx = self.ctx.shard(batch)
        x, y = self.train_set.get(idx) if length is None else self.train_set.get(idx, length=length)
        x = x.to(self.device, non_blocking=True)
        cond = conditioning(self.model, y)
        if cond is not None:
            cond = cond.to(self.device)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        if self.cfg.compile and hasattr(self.model, "check_input"):  # the compiled graph checks shapes only
            self.model.check_input(x, cond)
        self.optimizer.zero_grad(set_to_none=True)
        loss = train_module(x, cond)
        loss.backward()
        gnorm = float(grad_norm(params, self.cfg.grad_clip))
        loss_sum = self.ctx.all_reduce_sum(loss.detach().double().reshape(1))
        return float(loss_sum.item()) / self.ctx.world_size, gnorm

    def _diverged(self, step: int, loss: float, gnorm: float) -> None:
        last = self.last_checkpoint
        where = (f"the last good checkpoint is {last.weights} (step {last.step}); resume from it with a lower "
                 "lr or with grad_clip" if last is not None else "no checkpoint had been written yet")
        raise TrainingDiverged(f"training diverged at step {step}: loss {loss}, gradient norm {gnorm}; stopped "
                               f"without saving anything for this step; {where}")

    def _log_train(self, p: Progress, lr: float, per_epoch: int, length: int | None = None) -> None:
        """Averages over the window; under a curriculum, ``train_bpd`` uses the current context length."""
        nll = p.window_nll / max(p.window_count, 1)
        record = {
            "step": p.step, "epoch": round(p.epoch + p.batch_in_epoch / per_epoch, 4), "lr": lr,
            "train_nll": nll, "train_bpd": bits_per_dim(nll, self._dims(length)),
            "grad_norm": p.window_grad_norm / max(p.window_count, 1), "split": "train",
        }
        if length is not None:
            record["context_length"] = length
        self.metrics.write(record)
        p.window_nll, p.window_grad_norm, p.window_count = 0.0, 0.0, 0

    # ------------------------------------------------------------------ evaluation
    @property
    def scores_likelihood(self) -> bool:
        """False for a model without a likelihood (a GAN): no validation NLL, the final weights are kept."""
        return getattr(self.model, "likelihood", "exact") != "none"

    def _evaluate(self, p: Progress, per_epoch: int = 1) -> None:
        if self.val_set is None or not self.scores_likelihood:
            return
        cfg = self.cfg
        nll = mean_nll(self.eval_model, self.val_set, cfg.eval_batch_size, self.device, self.ctx, self.val_indices)
        p.last_val_nll, p.last_eval_step = nll, p.step
        if math.isfinite(nll) and (p.best_val_nll is None or nll < p.best_val_nll):
            p.best_val_nll, p.best_step, p.bad_evals = nll, p.step, 0
            if self.ctx.is_main and self.run_dir is not None and self.cfg.keep_weights == "best":
                save_weights(self.eval_model, self.run_dir / BEST_WEIGHTS,
                             {"step": str(p.step), "val_nll": repr(nll), "ema": str(self.ema is not None)})
        else:
            p.bad_evals += 1
            if cfg.patience and p.bad_evals >= cfg.patience and not p.done:
                p.stopped_early, p.done = True, True
                best = "none finite" if p.best_val_nll is None else f"{p.best_val_nll:.4f} nats at step {p.best_step}"
                p.reason = f"early stopping: no validation improvement in {cfg.patience} evaluations (best {best})"
        self.metrics.write({"step": p.step, "epoch": round(p.epoch + p.batch_in_epoch / per_epoch, 4),
                            "split": "val", "val_nll": nll, "val_bpd": bits_per_dim(nll, self.num_dims),
                            "ema": self.ema is not None, **self._val_scope()})

    def _val_scope(self) -> dict[str, Any]:
        """How many validation examples each evaluation scores, of how many, so a subset estimate
        (``train.eval_max_windows``) is never mistaken for the split's NLL; empty without validation."""
        if self.val_set is None or not self.scores_likelihood:
            return {}
        n = len(self.val_set)
        scored = n if self.val_indices is None else len(self.val_indices)
        return {"val_examples": scored, "val_split_examples": n, "val_subset": scored < n}

    def _save_best(self, p: Progress) -> None:
        """Without a validation set (or with ``keep_weights: final``), the final (EMA when on) weights become
        ``best.safetensors``."""
        if self.ctx.is_main and self.run_dir is not None:
            save_weights(self.eval_model, self.run_dir / BEST_WEIGHTS,
                         {"step": str(p.step), "final": "1", "ema": str(self.ema is not None)})

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, p: Progress) -> None:
        if self.run_dir is None:
            return
        rngs = self.ctx.all_gather_object(rng_state())  # every rank's RNG, so each resumes its own stream
        if self.ctx.is_main:
            state = {
                "progress": asdict(p),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "ema_updates": self.ema.updates if self.ema is not None else 0,
                "rng": rngs,
                "world_size": self.ctx.world_size,
                "config": self.cfg.to_dict(),
            }
            write_checkpoint(self.run_dir, p.step, self.model, state,
                             self.ema.module if self.ema is not None else None)
            prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints, p.step)
        self.last_checkpoint = CheckpointFiles.at(self.run_dir, p.step)

    def _restore(self) -> Progress:
        found = latest_checkpoint(self.run_dir)
        if found is None:
            raise CheckpointError(f"{self.run_dir}: no complete checkpoint to resume from")
        files, state, weights, ema_weights = found
        apply_weights(self.model, weights, files.weights)
        if self.ema is not None:
            if ema_weights is None:
                warnings.warn(f"{files.state}: no EMA weights in this checkpoint; the EMA restarts from the "
                              "current weights", stacklevel=3)
            apply_weights(self.ema.module, ema_weights if ema_weights is not None else weights, files.ema)
            self.ema.updates = int(state.get("ema_updates", 0))
        if self.optimizer is not None and state.get("optimizer") is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{files.state}: optimizer state does not fit this model ({e})") from None
        old_cfg = state.get("config", {})
        changed = [k for k in _TRAJECTORY_KEYS if k in old_cfg and old_cfg[k] != self.cfg.to_dict()[k]]
        if changed or state.get("world_size", 1) != self.ctx.world_size:
            warnings.warn(f"resuming {self.run_dir} with changed settings ({', '.join(changed) or 'process count'}); "
                          "the result will differ from an uninterrupted run", stacklevel=3)
        rngs = state["rng"]
        set_rng_state(rngs[self.ctx.rank] if self.ctx.rank < len(rngs) else rngs[0])
        p = Progress.from_state(state["progress"])
        if p.done and not p.stopped_early and p.step < self.cfg.steps:
            p.done, p.reason = False, None  # more steps were asked for
        self.metrics.truncate_after(p.step)
        self.last_checkpoint = files
        return p

    # ------------------------------------------------------------------ closed form
    def _fit_closed_form(self) -> Progress:
        if self.resume:
            found = latest_checkpoint(self.run_dir)
            if found is not None and found[1]["progress"].get("done"):
                apply_weights(self.model, found[2], found[0].weights)
                self.last_checkpoint = found[0]
                return Progress.from_state(found[1]["progress"])
        seed_everything(self.cfg.seed)
        self.metrics.reset()
        t0 = time.perf_counter()
        self.train_set.set_epoch(0)
        self.model.fit_counts(self.train_set)
        p = Progress()
        self._evaluate(p)
        p.done, p.reason, p.elapsed = True, "closed-form fit (counting)", time.perf_counter() - t0
        self._checkpoint(p)
        return p

    # ------------------------------------------------------------------ summary
    def _summary(self, p: Progress) -> dict[str, Any]:
        nd = self.num_dims
        per_epoch = max(len(self.train_set) // self.cfg.batch_size, 1)
        best = self._file(BEST_WEIGHTS)
        summary = {
            **self.summary_extra,
            "steps": p.step,
            "epochs": round(p.epoch + p.batch_in_epoch / per_epoch, 4),
            "best_val_nll": p.best_val_nll,
            "best_val_bpd": bits_per_dim(p.best_val_nll, nd) if p.best_val_nll is not None else None,
            "best_step": p.best_step,
            "final_val_nll": p.last_val_nll,
            "final_val_bpd": bits_per_dim(p.last_val_nll, nd) if p.last_val_nll is not None else None,
            "final_train_nll": p.last_train_nll,
            **self._val_scope(),
            "stopped_early": p.stopped_early,
            "reason": p.reason,
            "wall_time": round(p.elapsed, 3),
            "parameters": sum(w.numel() for w in self.model.parameters() if w.requires_grad),
            "train_examples": len(self.train_set),
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "best_weights": str(best) if best is not None and best.exists() else None,
            "kept_weights": self.cfg.keep_weights,
            "last_checkpoint": str(self.last_checkpoint.weights) if self.last_checkpoint else None,
        }
        return {k: finite_or_none(v) for k, v in summary.items()}
