"""Image sampling from an exported VAE or flow sampler: one pass from noise, no loop over pixels.

The graph (:mod:`chainrule.export.sampler`) takes ``z ~ N(0, I)``. A ``decoder`` sampler (VAE) returns the head
parameters of every pixel, independent given ``z``: each pixel is drawn from its own uniform number (Bernoulli:
``u < sigmoid(logit / T)``, categorical: the inverse CDF of ``softmax(logits / T)``), so for the same ``z`` and
``u`` the image is the one PyTorch draws. A ``flow`` sampler takes ``T z`` and returns dequantized values in
``[0, K)``, floored to levels as the flow's own sampler does.
"""

from __future__ import annotations

import numpy as np

from chainrule.core.limits import check_count, check_temperature
from chainrule.edge.errors import EdgeError
from chainrule.edge.model import EdgeModel
from chainrule.edge.sampling import softmax


def _decoder_levels(params: np.ndarray, u: np.ndarray, head: dict, temperature: float) -> np.ndarray:
    """Levels ``(n, C, *S)`` from head parameters ``(n, P, *S)`` and uniforms ``(n, C, *S)``."""
    p = params.astype(np.float64) / temperature
    if head.get("type") == "bernoulli":
        return (u < 1.0 / (1.0 + np.exp(-p))).astype(np.int64)
    if head.get("type") == "categorical":
        levels = int(head["levels"])
        logits = p.reshape(p.shape[0], u.shape[1], levels, *p.shape[2:])
        cdf = np.cumsum(softmax(logits, axis=2), axis=2)
        below = cdf <= np.expand_dims(u, 2) * cdf[:, :, -1:]
        return np.minimum(below.sum(axis=2), levels - 1).astype(np.int64)
    raise EdgeError(f"the edge runtime cannot sample a VAE decoder with a {head.get('type')!r} head")


def images_from_noise(model: EdgeModel, z: np.ndarray, u: np.ndarray | None = None,
                      temperature: float = 1.0) -> np.ndarray:
    """The image levels ``(n, C, *S)`` a sampler graph makes of the normal noise ``z`` (and, for a VAE, the
    uniform noise ``u`` ``(n, C, *S)`` of the pixel draws)."""
    meta = model.metadata
    levels = int(meta["head"]["levels"])
    if meta.get("sampler") == "flow":
        value = model.run({"z": np.asarray(z, dtype=np.float64) * temperature})[0]
        return np.clip(np.floor(np.maximum(value, 0.0)), 0, levels - 1).astype(np.int64)
    if meta.get("sampler") == "decoder":
        if u is None:
            raise EdgeError("a VAE sampler needs the uniform noise of the pixel draws")
        return _decoder_levels(model.run({"z": z})[0], np.asarray(u), meta["head"], temperature)
    raise EdgeError(f"{model.path}: unknown sampler {meta.get('sampler')!r}; upgrade chainrule")


def sample_from_sampler(model: EdgeModel, n: int, temperature: float = 1.0, seed: int | None = 0,
                        cls: int | None = None) -> np.ndarray:
    """``n`` samples, int64 levels ``(n, C, *S)``, from a sampler graph and a seeded numpy generator."""
    n = check_count(n, "the number of samples", EdgeError)
    temperature = check_temperature(temperature, EdgeError, greedy=False)
    if cls is not None:
        raise EdgeError("this model is not class-conditional")
    meta = model.metadata
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, *[int(s) for s in meta["noise_shape"]]))
    u = rng.random((n, *[int(s) for s in meta["event_shape"]])) if meta.get("sampler") == "decoder" else None
    return images_from_noise(model, z, u, temperature)
