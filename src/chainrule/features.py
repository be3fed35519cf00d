"""Feature vectors from any image or text run: ``chainrule features`` and ``api.features``.

* ``fisher``: the Fisher score of each example, the gradient of ``log p(x)`` with respect to a parameter subset
  (default: the output layer, the last Linear/Conv layer the forward pass runs, which produces the head's
  parameters), divided element-wise by the square root of the diagonal empirical Fisher ``E[g^2]`` estimated on
  the run's training data. Per-example gradients come from ``torch.func`` (``vmap`` over ``grad``); a model whose
  forward pass ``vmap`` cannot batch falls back to one backward pass per example, with the same result.
* ``hidden``: the model's last hidden activations, the input of the output layer (what the layer before it
  produces), mean-pooled over positions.

An input with several model events (an image larger than the run's event shape, a text line longer than the
context) gets the sum of its events' Fisher scores (``log p`` of the whole is their sum) and the mean of their
hidden features. Series runs are not supported.

    >>> from chainrule import api
    >>> names, feats = api.features("runs/mnist-pixelcnn", "digits/", kind="fisher")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.runs import Run, open_run
from chainrule.scoring import best_labels, text_lines

__all__ = ["DEFAULT_FISHER_EXAMPLES", "KINDS", "features", "fisher_diagonal", "hidden_features", "output_layer",
           "per_example_grads", "per_example_grads_loop", "selected_params"]

KINDS = ("fisher", "hidden")
DEFAULT_FISHER_EXAMPLES = 500
#: added to the diagonal Fisher so parameters the training data never moves do not divide by zero
FISHER_EPS = 1e-8
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: one model event batch: inputs ``(B, C, *S)`` and their class labels (or None)
Events = tuple[Tensor, Tensor | None]


def output_layer(model: nn.Module, x: Tensor, cond: Tensor | None = None) -> str:
    """The name of the last Linear/Conv layer a forward pass of ``x`` runs: the layer producing the head's
    parameters (found by running, since registration order need not be execution order)."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda *_, n=name: order.append(n))
             for name, m in model.named_modules() if isinstance(m, _LAYERS)]
    try:
        with torch.no_grad():
            model(x[:1], None if cond is None else cond[:1])
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise ConfigError(f"{type(model).__name__}: no Linear or Conv layer runs in its forward pass")
    return order[-1]


def selected_params(model: nn.Module, prefix: str) -> dict[str, Tensor]:
    """The parameters whose names start with ``prefix``; a tied weight counts once, under its first such name
    (its gradient is then the total over all its uses)."""
    chosen: dict[str, Tensor] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        if n.startswith(prefix) and all(p is not q for q in chosen.values()):
            chosen[n] = p
    if not chosen:
        names = ", ".join(sorted({n.rsplit(".", 1)[0] for n, _ in model.named_parameters()}))
        raise ConfigError(f"no parameter name starts with {prefix!r}; the model's layers: {names}")
    return chosen


def per_example_grads(model: nn.Module, params: dict[str, Tensor], x: Tensor, cond: Tensor | None) -> Tensor:
    """``d log p(x_i) / d params`` for every example, flattened ``(B, D)``: ``vmap`` over ``grad``. The input is
    checked once for the whole batch; inside, the model runs its network and head without the check."""
    from torch.func import functional_call, grad, vmap

    model.check_input(x, cond)
    wrapped = _UncheckedLogProb(model)
    names = [f"model.{n}" for n in params]

    def log_p(values: tuple[Tensor, ...], xi: Tensor, ci: Tensor | None) -> Tensor:
        state = dict(zip(names, values, strict=True))
        return functional_call(wrapped, state, (xi[None], None if ci is None else ci[None]), strict=False).sum()

    values = tuple(p.detach() for p in params.values())
    grads = vmap(grad(log_p), in_dims=(None, 0, None if cond is None else 0))(values, x, cond)
    return torch.cat([g.flatten(1) for g in grads], dim=1)


class _UncheckedLogProb(nn.Module):
    """``log p(x)`` of an already checked input: the network and the head, without the data-dependent input check
    ``vmap`` cannot batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        m = self.model
        return m.head.log_prob(m.network(m.encode(x), cond), x).flatten(1).sum(1)


def per_example_grads_loop(model: nn.Module, params: dict[str, Tensor], x: Tensor, cond: Tensor | None) -> Tensor:
    """The same gradients as :func:`per_example_grads`, one backward pass per example."""
    rows = []
    for i in range(len(x)):
        lp = model.log_prob(x[i:i + 1], None if cond is None else cond[i:i + 1]).sum()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(lp, list(params.values()), allow_unused=True,
                                                               materialize_grads=True)]))
    return torch.stack(rows)


def grads(model: nn.Module, params: dict[str, Tensor], x: Tensor, cond: Tensor | None, batch: int = 64) -> Tensor:
    """Per-example gradients in batches, vectorised where the model allows it."""
    out = []
    for lo in range(0, len(x), batch):
        xb, cb = x[lo:lo + batch], None if cond is None else cond[lo:lo + batch]
        if vectorisable(model):
            try:
                out.append(per_example_grads(model, params, xb, cb))
                continue
            except (RuntimeError, NotImplementedError, ValueError):
                pass
        out.append(per_example_grads_loop(model, params, xb, cb))
    return torch.cat(out).detach()


def vectorisable(model: nn.Module) -> bool:
    """Whether ``log p`` is the contract's network + head (not, e.g., an average over masks), so
    :func:`per_example_grads` may compute it without going through ``log_prob``."""
    cls = type(model)
    return all(getattr(cls, f) is getattr(AutoregressiveModel, f) for f in ("forward", "log_prob",
                                                                           "log_prob_positions"))


def fisher_diagonal(model: nn.Module, params: dict[str, Tensor], x: Tensor, cond: Tensor | None) -> Tensor:
    """The diagonal empirical Fisher ``E[g^2]`` over the examples ``x``."""
    return grads(model, params, x, cond).pow(2).mean(0)


def hidden_features(model: nn.Module, layer: str, x: Tensor, cond: Tensor | None) -> Tensor:
    """The input of ``layer`` (the last hidden activations), mean-pooled over positions: ``(B, F)``."""
    seen: list[Tensor] = []
    module = model.get_submodule(layer)

    def keep(_: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        h = inputs[0]
        if isinstance(module, nn.Linear):
            seen.append(h.reshape(h.shape[0], -1, h.shape[-1]).mean(1))
        else:
            seen.append(h.flatten(2).mean(2))

    hook = module.register_forward_pre_hook(keep)
    try:
        with torch.no_grad():
            model(x, cond)
    finally:
        hook.remove()
    return torch.stack(seen).mean(0)


def features(run: Run | str | Path, inputs: str | Path, kind: str = "fisher", params: str | None = None,
             fisher_examples: int = DEFAULT_FISHER_EXAMPLES) -> tuple[list[str], np.ndarray]:
    """The example names and their features ``(N, D)`` (float32) for the images or text lines of ``inputs``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown feature kind {kind!r}; choose one of {', '.join(KINDS)}")
    trained = run if isinstance(run, Run) else open_run(run)
    if trained.kind is RunKind.SERIES:
        raise ConfigError(f"{trained.path}: features are computed for image and text runs only")
    model = trained.load_model("cpu").eval()
    examples = _examples(model, trained, Path(inputs))
    x0, c0 = examples[0][1][0]
    layer = output_layer(model, x0, c0)
    if kind == "hidden":
        rows = [torch.cat([hidden_features(model, layer, x, c) for x, c in events]).mean(0) for _, events in examples]
        return [n for n, _ in examples], torch.stack(rows).numpy().astype(np.float32)
    chosen = selected_params(model, params if params is not None else f"{layer}.")
    fisher = fisher_diagonal(model, chosen, *_training_events(trained, fisher_examples, model.num_classes > 0))
    rows = [torch.cat([grads(model, chosen, x, c) for x, c in events]).sum(0) for _, events in examples]
    scores = torch.stack(rows) / (fisher + FISHER_EPS).sqrt()
    return [n for n, _ in examples], scores.numpy().astype(np.float32)


def _examples(model: Any, run: Run, inputs: Path) -> list[tuple[str, list[Events]]]:
    """Each input's name and its model events (image tiles, text windows)."""
    if run.kind is RunKind.TEXT:
        from chainrule.modalities.text.data.tokenizers import load_tokenizer

        out = []
        for name, ids in text_lines(model, load_tokenizer(run.path / TOKENIZER_FILE), inputs):
            t = torch.from_numpy(ids)
            out.append((name, [(t[lo:lo + model.max_len][None, None], None) for lo in range(0, len(t), model.max_len)]))
        return out
    from chainrule.modalities.image.codec import ImageCodec

    codec = ImageCodec(model, int(run.spec["levels"]))
    out = []
    for picture in codec.read(inputs).items:
        x = torch.from_numpy(codec.events(picture)[0])
        with torch.no_grad():
            out.append((picture.name, [(x, best_labels(model, x))]))
    return out


def _training_events(run: Run, n: int, conditional: bool) -> Events:
    """Up to ``n`` examples of the run's training split (with their labels for a class-conditional model)."""
    from chainrule.api import load_data

    if int(n) < 1:
        raise ConfigError(f"the Fisher needs at least one training example, got {n}")
    train = load_data(run.config["data"], run.path)["train"]
    x, y = train.get(torch.arange(min(int(n), len(train))))
    return x, y if conditional else None
