"""The Python API: thin functions over data, models, training and evaluation.

>>> from chainrule import api
>>> run = api.train("digits", "gated_pixelcnn", overrides=["train.steps=500"])
>>> api.evaluate(run)["bpd"]
>>> x = api.sample(run, 16, temperature=1.0, seed=0)
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from chainrule.compression import compress as compress  # re-exported: api.compress / api.decompress
from chainrule.compression import decompress as decompress
from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ChainruleError, ConfigError
from chainrule.core.evaluation.metrics import dataset_nll
from chainrule.core.evaluation.plots import plot_training_curve
from chainrule.core.limits import check_count, check_temperature
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.core.runs.config import build_config
from chainrule.core.runs.files import METRICS_FILE, PLOTS_DIR, SAMPLES_DIR, TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.core.runs.lock import run_lock
from chainrule.core.runs.run import check_new_run_dir
from chainrule.core.training.checkpoint import list_checkpoints
from chainrule.core.training.rng import seed_everything
from chainrule.features import features as features  # re-exported: api.features / api.score
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.grids import save_grid
from chainrule.runs import Run, default_run_dir, open_run
from chainrule.scoring import score as score


def _model_run(run: Run | str | Path) -> Run:
    """An image or text run; a time-series run gets a :class:`ConfigError` pointing to ``chainrule forecast``."""
    run = run if isinstance(run, Run) else open_run(run)
    if run.kind is RunKind.SERIES:
        raise ConfigError(f"{run.path} is a time-series run: use 'chainrule forecast predict|backtest' "
                          "(or chainrule.modalities.series.api; a series sequence VAE: 'chainrule eval|sample')")
    return run


def load_data(data_cfg: dict[str, Any], run_path: Path | None = None) -> dict[str, ImageDataset]:
    """Train/val/test splits for a run's ``data`` section (text runs reuse the run's own tokenizer)."""
    from chainrule.modalities.datasets import load_splits

    opts = dict(data_cfg)
    name = opts.pop("name")
    if run_path is not None and (run_path / TOKENIZER_FILE).is_file():
        opts["tokenizer_path"] = str(run_path / TOKENIZER_FILE)
    return load_splits(name, **opts)


def prepare_run(dataset: str | None, model: str | None, config_file: str | Path | None = None,
                overrides: Iterable[str] = (), run_dir: str | Path | None = None
                ) -> tuple[Run, AutoregressiveModel, dict[str, ImageDataset]]:
    """Resolve the config, load the data and build the model of a new run (nothing is written yet:
    :func:`train` writes the run's config.yaml once it holds the run directory's lock)."""
    from chainrule.core.training.tensorboard import wants_tensorboard

    cfg = build_config(dataset, model, config_file, overrides)
    wants_tensorboard(cfg)  # a bad output.tensorboard fails before anything is loaded or written
    splits = load_data(cfg["data"])
    train_set = splits["train"]
    conditional = bool(cfg["model"].get("conditional", False))
    if conditional and train_set.num_classes == 0:
        raise ConfigError(f"model.conditional=true but dataset {cfg['data']['name']!r} has no class labels")
    spec = {
        "kind": getattr(train_set, "run_kind", None)
        or (RunKind.TEXT if getattr(train_set, "tokenizer", None) is not None else RunKind.IMAGE).value,
        "event_shape": list(train_set.event_shape),
        "levels": train_set.levels,
        "num_classes": train_set.num_classes if conditional else 0,
        "class_names": list(train_set.class_names),
        "data": train_set.describe(),
        **(train_set.spec() if hasattr(train_set, "spec") else {}),  # audio: sample rate and quantisation
    }
    path = Path(run_dir) if run_dir else default_run_dir(cfg["data"]["name"], cfg["model"]["name"])
    if "RANK" in os.environ and run_dir is None:
        raise ConfigError("under torchrun, give the run directory explicitly with --run DIR")
    if _is_rank_zero():
        check_new_run_dir(path)  # early, before any training; checked again under the lock
    seed_everything(int(cfg["train"].get("seed", 0)))
    run = Run(path=path, config={**cfg, "spec": spec})
    net = run.build_model()
    return run, net, splits


def train(dataset: str | None = None, model: str | None = None, config_file: str | Path | None = None,
          overrides: Iterable[str] = (), run_dir: str | Path | None = None, resume: bool = False) -> Run:
    """Train a model and write a run directory (config, checkpoints, metrics, curve, sample grid).

    The run directory is locked while it is written (by rank 0 under torchrun): a second writer fails at once.
    ``resume=True`` continues the run from its newest checkpoint, or starts it again from its saved config when
    it was stopped before its first checkpoint.
    """
    if _series_data(dataset) or (resume and run_dir is not None and open_run(run_dir).kind is RunKind.SERIES):
        from chainrule.modalities.series.api import train_forecaster  # a series dataset: its windows, its trainer

        return train_forecaster(dataset, model, run_dir=run_dir, config_file=config_file, overrides=overrides,
                                resume=resume)
    if resume:
        if run_dir is None:
            raise ConfigError("--resume needs the run directory (--run DIR)")
        with run_lock(run_dir, enabled=_is_rank_zero()):
            run = open_run(run_dir)
            splits = load_data(run.config["data"], run.path)
            seed_everything(int(run.config["train"].get("seed", 0)))
            return _fit(run, run.build_model(), splits, resume=bool(list_checkpoints(run.path)))
    run, net, splits = prepare_run(dataset, model, config_file, overrides, run_dir)
    with run_lock(run.path, create=True, enabled=_is_rank_zero()):
        if _is_rank_zero():
            check_new_run_dir(run.path)
            if run.kind in (RunKind.TEXT, RunKind.MUSIC):
                splits["train"].tokenizer.save(run.path / TOKENIZER_FILE)
            run.save_config()  # before any weights: a run killed from here on can be resumed
        return _fit(run, net, splits, resume=False)


def _series_data(dataset: str | None) -> bool:
    """True for a registered time-series dataset name (``chainrule forecast datasets``)."""
    from chainrule.modalities.series.api import is_dataset_name

    return dataset is not None and is_dataset_name(dataset)


def _fit(run: Run, net: AutoregressiveModel, splits: dict[str, ImageDataset], resume: bool) -> Run:
    from chainrule.core.training import TrainConfig, Trainer
    from chainrule.core.training.tensorboard import tensorboard_sink

    sink = tensorboard_sink(run.path, run.config) if _is_rank_zero() else None  # output.tensorboard=true
    trainer = Trainer(net, splits["train"], splits["val"], TrainConfig.from_dict(run.config["train"]), run.path,
                      resume=resume, sinks=[sink] if sink else [])
    try:
        trainer.fit()  # also writes summary.json
        if _is_rank_zero():
            finish_run(run)
            if sink is not None:
                sink.add_run_outputs(run.path)
    finally:
        if sink is not None:
            sink.close()
    return run


def _is_rank_zero() -> bool:
    """True in a single process and on rank 0 under torchrun (which sets RANK)."""
    from chainrule.core.training.distributed import is_main_process

    return is_main_process()


def finish_run(run: Run) -> None:
    """Write the training-curve PNG and a sample grid for a finished run."""
    plot_training_curve(run.path / METRICS_FILE, run.path / PLOTS_DIR / "training_curve.png",
                        title=f"{run.config['model']['name']} on {run.spec['data']}")
    out = run.config.get("output", {})
    n = int(out.get("samples", 64))
    if run.kind is RunKind.TEXT:
        if n > 0:
            texts = generate_texts(run, "", num_samples=min(n, 4), max_new_tokens=200, seed=0,
                                   temperature=float(out.get("temperature", 1.0)))
            atomic_write_text(run.path / SAMPLES_DIR / "final.txt",
                              "".join(f"=== sample {i + 1} ===\n{t}\n" for i, t in enumerate(texts)))
        return
    if run.kind is RunKind.MUSIC:
        if n > 0:
            from chainrule.music import generate_music

            generate_music(run, run.path / SAMPLES_DIR / "final.mid", temperature=float(out.get("temperature", 1.0)))
        return
    if run.kind is RunKind.AUDIO:
        if n > 0:
            x = sample_audio(run, float(out.get("seconds", 0.5)), n=1, seed=0,
                             temperature=float(out.get("temperature", 1.0)))
            write_run_wav(run, x, run.path / SAMPLES_DIR / "final.wav")
        return
    if n > 0:
        model = run.load_model()
        x = sample(run, n, temperature=float(out.get("temperature", 1.0)), seed=0, model=model)
        save_grid(x, run.spec["levels"], run.path / SAMPLES_DIR / "final.png")


def evaluate(run: Run | str | Path, split: str = "test", batch_size: int = 256,
             model: AutoregressiveModel | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Exact NLL of a split: nats per example and bits/dim. Written to ``out`` (JSON) when given, else recorded
    in the run's summary.json when the run can take it: evaluating needs only read access. A latent series run
    (the sequence VAE on windows) reports its ELBO and IWAE bounds on its held-out windows instead."""
    run = run if isinstance(run, Run) else open_run(run)
    if run.kind is RunKind.SERIES:
        from chainrule.modalities.series.latent import evaluate_run

        if split != "test":
            raise ConfigError(f"a series run is scored on its held-out windows only (split 'test'), not {split!r}")
        result = evaluate_run(run, batch_size=batch_size)
        if out is not None:
            atomic_write_text(out, json.dumps(result, indent=2) + "\n")
        else:
            _record(run, {"eval_test": result})
        return result
    run = _model_run(run)
    splits = load_data(run.config["data"], run.path)
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(splits)}")
    model = model or run.load_model()
    if model.likelihood == "none":
        raise ConfigError(f"model {model.name!r} ({model.family}) has no likelihood to evaluate; compare it by "
                          "sample quality with `chainrule leaderboard`")
    data = splits[split]
    res = dataset_nll(model, data, batch_size=batch_size)
    result = {"split": split, "data": data.describe(), "model": run.config["model"]["name"],
              "nll_nats": res["nll"], "bpd": res["bpd"], "examples": res["examples"],
              "params": sum(p.numel() for p in model.parameters()), "likelihood": model.likelihood}
    chars_per_token = getattr(data, "chars_per_token", None)
    if chars_per_token:  # text: per token and per character, so every tokenizer compares fairly
        result["nats_per_token"] = res["nll"] / model.num_dims
        result["bits_per_char"] = result["nats_per_token"] / math.log(2.0) / chars_per_token
    if run.kind is RunKind.MUSIC:  # one position = one event (token)
        result["nats_per_event"] = res["nll"] / model.num_dims
        result["likelihood"] = model.likelihood  # "bound": the NLL is an upper bound (sequence VAE)
    if run.kind is RunKind.AUDIO:  # one position = one sample: bits/dim is bits per sample
        result["bits_per_sample"] = res["bpd"]
        result["quantization"] = run.spec.get("quantization")
    if out is not None:
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    else:
        _record(run, {f"eval_{split}": result})
    return result


def _record(run: Run, updates: dict[str, Any]) -> None:
    """Add results to the run's summary.json, or warn why not (read-only, full, being trained, corrupt)."""
    try:
        with run_lock(run.path):
            run.write_summary(updates)
    except (OSError, ChainruleError) as e:
        warnings.warn(f"results not recorded in the run's summary: {e}", stacklevel=3)


def _resolve_class(run: Run, model: AutoregressiveModel, cls: int | str | None, n: int) -> Tensor | None:
    if cls is None:
        if model.num_classes > 0:
            return torch.arange(n, device=model.device) % model.num_classes
        return None
    if model.num_classes == 0:
        raise ConfigError("this model is not class-conditional; train with --set model.conditional=true")
    names = run.spec.get("class_names", [])
    if isinstance(cls, bool) or not isinstance(cls, (int, str)):
        raise ConfigError(f"class must be an index or a class name, got {cls!r}")
    if isinstance(cls, str) and not re.fullmatch(r"-?[0-9]+", cls):  # ASCII digits only: "²".isdigit() is True
        if cls not in names:
            raise ConfigError(f"unknown class {cls!r}; classes: {', '.join(names)}")
        idx = names.index(cls)
    else:
        idx = int(cls)
    if not 0 <= idx < model.num_classes:
        raise ConfigError(f"class {idx} out of range 0..{model.num_classes - 1}")
    return torch.full((n,), idx, dtype=torch.long, device=model.device)


def check_image_sampling(n: int, temperature: float) -> None:
    """The options of :func:`sample` and :func:`complete` (:mod:`chainrule.core.limits`): ``n >= 1`` and a
    temperature in its positive range — image entry points take no greedy 0 (``model.sample`` does)."""
    check_count(n, "the number of samples", ConfigError)
    check_temperature(temperature, ConfigError, greedy=False)


def sample(run: Run | str | Path, n: int = 64, cls: int | str | None = None, temperature: float = 1.0,
           seed: int = 0, use_cache: bool = True, model: AutoregressiveModel | None = None) -> Tensor:
    """Draw ``n`` samples (long levels ``(n, C, H, W)``) from a run's model."""
    run = _model_run(run)
    check_image_sampling(n, temperature)
    model = model or run.load_model()
    cond = _resolve_class(run, model, cls, n)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    return model.sample(n, cond=cond, temperature=temperature, use_cache=use_cache, generator=gen)


def sample_audio(run: Run | str | Path, seconds: float = 2.0, n: int = 1, cls: int | str | None = None,
                 temperature: float = 1.0, seed: int = 0, use_cache: bool = True,
                 model: AutoregressiveModel | None = None, engine: str | None = None) -> Tensor:
    """``n`` waveforms of ``seconds`` from an audio run, as levels ``(n, 1, T)`` (write them with
    :func:`write_run_wav`); ``use_cache=False`` re-runs the receptive field per sample (Fast WaveNet's baseline).
    ``engine`` runs the queued step: ``eager``, ``static`` (default), ``compiled`` or ``auto`` (compiled for long
    outputs, where its one-off compilation pays; docs/audio.md); every engine gives the same audio for a seed."""
    from chainrule.modalities.audio.generation import auto_engine, generate

    run = _model_run(run)
    if run.kind is not RunKind.AUDIO:
        raise ConfigError(f"{run.path}: not an audio run ('chainrule sample' without --seconds draws images)")
    check_image_sampling(n, temperature)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 600:
        raise ConfigError(f"seconds must be a number in (0, 600]; got {seconds!r}")
    model = model or run.load_model()
    cond = _resolve_class(run, model, cls, n)
    length = max(1, round(seconds * int(run.spec["sample_rate"])))
    if engine == "auto":
        engine = auto_engine(model, n * length) if use_cache else None
    gen = torch.Generator(device=model.device).manual_seed(seed)
    return generate(model, n, length, cond, temperature=temperature, use_cache=use_cache, generator=gen,
                    engine=engine)


def write_run_wav(run: Run | str | Path, levels: Tensor, out: str | Path) -> Path:
    """Audio levels of a run -> a 16-bit WAV file at the run's sample rate."""
    from chainrule.modalities.audio.wav import write_wav

    run = _model_run(run)
    return write_wav(levels, run.spec["quantization"], int(run.spec["sample_rate"]), out)


def complete(run: Run | str | Path, n: int = 16, split: str = "test", seed: int = 0,
             temperature: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """Fill in the lower half of ``n`` images of a split given their upper half.

    Returns ``(originals, given, completions)``, each ``(n, C, H, W)``; ``given`` has the hidden half at 0.
    """
    run = _model_run(run)
    check_image_sampling(n, temperature)
    model = run.load_model()
    data = load_data(run.config["data"], run.path)[split]
    n = min(n, len(data))
    x, y = data.get(torch.arange(n))
    x = x.to(model.device)
    h = x.shape[2]
    known = torch.zeros(n, *x.shape[2:], dtype=torch.bool, device=model.device)
    known[:, : h // 2] = True
    cond = y.to(model.device) if (y is not None and model.num_classes > 0) else None
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out = model.sample(n, cond=cond, x_given=x, known=known, temperature=temperature, generator=gen)
    given = x * known.unsqueeze(1)
    return x, given, out


# ----------------------------------------------------------------- text generation
def load_text_run(run: Run | str | Path, device: str | None = None) -> tuple[AutoregressiveModel, Any]:
    """The model (eval mode) and tokenizer (``RUN/tokenizer.json``) of a text run."""
    from chainrule.core.errors import CheckpointError
    from chainrule.modalities.text.data.tokenizers import load_tokenizer

    run = _model_run(run)
    if run.kind is not RunKind.TEXT:
        raise ConfigError(f"{run.path}: not a text run; generate needs a language model "
                          "('chainrule sample' draws images)")
    path = run.path / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{run.path}: text run without {TOKENIZER_FILE}")
    return run.load_model(device), load_tokenizer(path)


def _text_model(run: Run | str | Path | None, model: AutoregressiveModel | None, tokenizer: Any,
                device: str | None) -> tuple[AutoregressiveModel, Any]:
    if model is not None and tokenizer is not None:
        return model, tokenizer
    if run is None:
        raise ConfigError("give a run, or both model and tokenizer")
    loaded_model, loaded_tok = load_text_run(run, device)
    model = model if model is not None else loaded_model
    if model.family != "autoregressive":  # a latent model has no next-token loop to continue a prompt with
        raise ConfigError(f"{getattr(run, 'path', run)}: a {model.family} model ({model.name}) cannot continue a "
                          "prompt; draw from its prior with 'chainrule sample'")
    return model, (tokenizer if tokenizer is not None else loaded_tok)


def generate(run: Run | str | Path | None, prompt: str = "", *, use_cache: bool = True,
             model: AutoregressiveModel | None = None, tokenizer: Any = None, device: str | None = None,
             **options: Any) -> Iterator[str]:
    """Stream one sample's continuation of ``prompt`` as text pieces, as they are produced.

    ``options`` are :class:`chainrule.modalities.text.generation.GenerationConfig` fields (``max_new_tokens``,
    ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``no_repeat_ngram_size``, ``stop``,
    ``seed``). Options are checked before this returns (:class:`ConfigError`).

    >>> for piece in api.generate("runs/shakespeare-transformer", "ROMEO:", max_new_tokens=100):
    ...     print(piece, end="", flush=True)
    """
    from chainrule.modalities.text.generation import GenerationConfig, stream_texts

    cfg = GenerationConfig.from_options(**options)
    if cfg.num_samples != 1:
        raise ConfigError("generate streams one sample; use generate_texts for several")
    model, tokenizer = _text_model(run, model, tokenizer, device)
    steps = stream_texts(model, tokenizer, prompt, cfg, use_cache=use_cache)
    return (pieces[0] for pieces in steps if pieces[0])


def generate_texts(run: Run | str | Path | None, prompt: str = "", num_samples: int = 1, *,
                   use_cache: bool = True, model: AutoregressiveModel | None = None, tokenizer: Any = None,
                   device: str | None = None, **options: Any) -> list[str]:
    """Generate ``num_samples`` continuations of ``prompt`` together; returns the text of each (stop strings
    applied, the prompt not included). ``options`` as for :func:`generate`."""
    from chainrule.modalities.text.generation import GenerationConfig, generate_strings

    cfg = GenerationConfig.from_options(num_samples=num_samples, **options)
    model, tokenizer = _text_model(run, model, tokenizer, device)
    return generate_strings(model, tokenizer, prompt, cfg, use_cache=use_cache)
