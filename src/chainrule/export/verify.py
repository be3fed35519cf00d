"""Post-export check: the ONNX graph, run by onnxruntime, reproduces the traced PyTorch module."""

from __future__ import annotations

import numpy as np
import torch

from chainrule.core.errors import ConfigError
from chainrule.export.plan import ExportPlan

#: consecutive steps checked for step graphs (the cache outputs are fed back in)
STEPS_CHECKED = 3


def session(data: bytes):  # -> onnxruntime.InferenceSession
    """A single-threaded CPU onnxruntime session for an ONNX model held in memory."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def check_parity(plan: ExportPlan, data: bytes, tol: float) -> float:
    """Largest |ONNX - PyTorch| over the plan's outputs; :class:`ConfigError` when it exceeds ``tol``."""
    sess = session(data)
    if plan.metadata.get("kind") == "audio":  # against the model's own queued step, past its receptive field
        from chainrule.export.audio import check_queued_step

        return check_queued_step(plan, sess, tol)
    args = list(plan.args)
    steps = STEPS_CHECKED if plan.metadata.get("graph") == "step" else 1
    gen = torch.Generator().manual_seed(0)
    if plan.metadata.get("graph") == "forward":  # random levels (and labels) rather than the zero example
        args[0] = torch.randint(plan.metadata["head"]["levels"], args[0].shape, generator=gen).to(args[0].device)
        if len(args) > 1:
            args[1] = torch.randint(plan.metadata["num_classes"], args[1].shape, generator=gen).to(args[1].device)
    worst = 0.0
    with torch.no_grad():
        for t in range(steps):
            if plan.metadata.get("graph") == "step":  # random tokens (text) or step inputs (forecasters)
                if args[0].is_floating_point():
                    args[0] = torch.randn(args[0].shape, generator=gen).to(args[0])
                else:
                    vocab = int(plan.metadata["vocab_size"])
                    args[0] = torch.randint(vocab, args[0].shape, generator=gen).to(args[0].device)
                args[1] = torch.full_like(args[1], t)
            expected = plan.module(*args)
            expected = expected if isinstance(expected, tuple) else (expected,)
            feeds = {n: _numpy(a) for n, a in zip(plan.input_names, args, strict=True)}
            got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
            for e, g in zip(expected, got, strict=True):
                worst = max(worst, float(np.abs(_numpy(e) - g).max(initial=0.0)))
            if plan.metadata.get("graph") == "step":
                args[2:] = list(expected[1:])
    if not worst <= tol:
        raise ConfigError(f"ONNX export of {plan.metadata.get('model')!r} does not reproduce PyTorch "
                          f"(max difference {worst:.3g} > {tol:g})")
    return worst
