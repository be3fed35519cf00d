"""Lossless compression with a trained run: ``chainrule compress`` / ``decompress`` and the Python API.

The run's model predicts each symbol of the file (a token of a text run, a pixel channel of an image run, a count of
a series run) and a range coder spends ``-log2 p`` bits on it, so a file costs about the model's own NLL plus a
header of a few hundred bytes. Decoding needs the very same run (checked by a fingerprint) and runs the model once
per symbol.

    >>> from chainrule import api
    >>> api.compress("runs/shakespeare-transformer", "play.txt", "play.txt.cr")
    >>> api.decompress("runs/shakespeare-transformer", "play.txt.cr", "copy.txt")

What is modality-free (quantisation, the coding loop, the ``.cr`` format) is :mod:`chainrule.core.compression`;
turning files into symbols is each modality's codec (:mod:`chainrule.modalities.text.codec`,
:mod:`chainrule.modalities.image.codec`, :mod:`chainrule.modalities.series.codec`). A time-series run compresses a
file of counts when its head is discrete (``negative_binomial``); runs with a density head are refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import torch

from chainrule.core.compression.coder import Decoder, Encoder, coding_mode
from chainrule.core.compression.container import CompressedFileError, Container
from chainrule.core.errors import ConfigError, DataError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.modalities.image.codec import ImageCodec
from chainrule.modalities.text.codec import TextCodec
from chainrule.runs import Run, open_run

if TYPE_CHECKING:
    from chainrule.modalities.series.codec import SeriesCodec

__all__ = ["CODED_KINDS", "DEFAULT_BATCH", "SUFFIX", "RunCoder", "compress", "decompress", "run_fingerprint"]

#: rows coded in lockstep: text streams or image tiles (the decoder reads the number from the file)
DEFAULT_BATCH = 16
SUFFIX = ".cr"
#: the run kinds that can compress (each has a codec turning its files into its model's symbols and back)
CODED_KINDS = (RunKind.TEXT, RunKind.IMAGE, RunKind.SERIES)


def run_fingerprint(run: Run) -> bytes:
    """sha256 of what decides the model's probabilities: the weights file, the config and the tokenizer."""
    h = hashlib.sha256()
    for label, path in (("weights", run.weights_path()), ("tokenizer", run.path / TOKENIZER_FILE)):
        if path.is_file():
            h.update(label.encode() + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    h.update(b"config\0" + json.dumps(run.config, sort_keys=True, default=str).encode())
    return h.digest()


class RunCoder:
    """A run's model and codec, loaded once, coding contents to :class:`Container` and back."""

    def __init__(self, run: Run | str | Path, batch_size: int = DEFAULT_BATCH,
                 fingerprint: bytes | None = None) -> None:
        self.run = run if isinstance(run, Run) else open_run(run)
        if int(batch_size) < 1:
            raise ConfigError(f"the batch size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.fingerprint = fingerprint or run_fingerprint(self.run)
        kind = self.run.kind
        if kind not in CODED_KINDS:
            raise ConfigError(f"{self.run.path}: a {kind.value} run cannot compress yet (no codec for its data)")
        self.model = self.run.load_model("cpu")
        if self.model.family != "autoregressive":  # a bound or no likelihood: no per-symbol conditionals to code
            raise ConfigError(f"{self.run.path}: a {self.model.family} model ({self.model.name}) cannot compress; "
                              "compression needs an autoregressive model's conditionals")
        self.codec: TextCodec | ImageCodec | SeriesCodec
        if kind is RunKind.TEXT:
            from chainrule.modalities.text.data.tokenizers import load_tokenizer

            self.codec = TextCodec(self.model, load_tokenizer(self.run.path / TOKENIZER_FILE))
        elif kind is RunKind.SERIES:
            from chainrule.modalities.series.codec import SeriesCodec  # pandas: the timeseries extra

            self.codec = SeriesCodec(self.model, self.run.spec, str(self.run.path))
        else:
            self.codec = ImageCodec(self.model, int(self.run.spec["levels"]))

    def read(self, path: str | Path) -> Any:
        return self.codec.read(Path(path))

    def encode(self, content: Any, progress: str | None = None) -> tuple[Container, float]:
        """The container for ``content`` and the ideal cost of its payload in bits."""
        encoder = Encoder()
        with coding_mode(self.model):
            metadata = self.codec.encode(content, encoder, self.batch_size, progress)
        metadata["torch"] = torch.__version__
        return Container(self.fingerprint, self.codec.checksum(content), metadata, encoder.words()), encoder.bits

    def decode(self, container: Container, progress: str | None = None, where: str = "compressed file") -> Any:
        """The content of ``container``; :class:`CompressedFileError` for another run, corrupt metadata, or a
        result that fails the checksum."""
        check_fingerprint(container, self.fingerprint, where)
        if container.metadata.get("codec") != self.codec.kind:
            raise CompressedFileError(f"{where}: holds {container.metadata.get('codec')!r} data, this run codes "
                                      f"{self.codec.kind}")
        try:
            with coding_mode(self.model):
                content = self.codec.decode(container.metadata, Decoder(container.words), progress)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            raise CompressedFileError(f"{where}: corrupt metadata or payload ({type(e).__name__}: {e})") from None
        if self.codec.checksum(content) != container.checksum:
            made = container.metadata.get("torch")
            raise CompressedFileError(f"{where}: the decoded data fails its checksum; nothing written (compressed "
                                      f"with torch {made}, this is torch {torch.__version__}: the model's "
                                      "probabilities must be bit-identical on both sides)")
        return content


def check_fingerprint(container: Container, fingerprint: bytes, where: str) -> None:
    if container.fingerprint != fingerprint:
        raise CompressedFileError(f"{where}: compressed with a different run (fingerprint "
                                  f"{container.fingerprint.hex()[:12]}, this run {fingerprint.hex()[:12]})")


def compress(run: Run | str | Path, input: str | Path, out: str | Path | None = None, *,
             batch_size: int = DEFAULT_BATCH, progress: bool = False) -> dict[str, Any]:
    """Compress the file (text run), image / folder of images (image run) or file of counts (series run) ``input``
    to ``out`` (default
    ``INPUT.cr``, never overwriting an existing file); returns sizes, rates and timing."""
    src = Path(input)
    dest = Path(out) if out is not None else src.parent / f"{src.name}{SUFFIX}"
    if out is None and dest.exists():
        raise ConfigError(f"{dest} already exists; choose the output with --out")
    coder = RunCoder(run, batch_size)
    t0 = time.perf_counter()
    content = coder.read(src)
    if dest.resolve() == src.resolve():
        raise ConfigError(f"{dest}: the output would overwrite the input")
    container, bits = coder.encode(content, "compress" if progress else None)
    data = container.to_bytes()
    atomic_write_bytes(dest, data)
    units, unit = coder.codec.units(content)
    input_bytes = src.stat().st_size if src.is_file() else sum((src / p.name).stat().st_size for p in content.items)
    return {"input": str(src), "output": str(dest), "codec": coder.codec.kind, "input_bytes": input_bytes,
            "output_bytes": len(data), "header_bytes": container.header_bytes, "model_bits": bits, "units": units,
            "unit": unit, "bits_per_unit": 8 * len(data) / max(units, 1),
            "model_bits_per_unit": bits / max(units, 1), "seconds": time.perf_counter() - t0}


def decompress(run: Run | str | Path, path: str | Path, out: str | Path | None = None, *,
               progress: bool = False) -> dict[str, Any]:
    """Decompress ``path`` with the run that compressed it. A file comes back at ``out`` (default: its original
    name beside ``path``), a folder of images inside the folder ``out`` (default: ``path`` without ``.cr``).
    Nothing is written unless the whole content decodes and passes its checksum."""
    src = Path(path)
    try:
        blob = src.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{src}: no such file") from None
    container = Container.from_bytes(blob, str(src))
    trained = run if isinstance(run, Run) else open_run(run)
    fingerprint = run_fingerprint(trained)
    check_fingerprint(container, fingerprint, str(src))  # before loading the model: the wrong run fails fast
    coder = RunCoder(trained, fingerprint=fingerprint)
    targets = output_paths(container.metadata, coder.codec.output_names(container.metadata), src, out)
    t0 = time.perf_counter()
    content = coder.decode(container, "decompress" if progress else None, str(src))
    plan = coder.codec.write_plan(content)
    for target, (_, data) in zip(targets, plan, strict=True):
        atomic_write_bytes(target, data)
    return {"input": str(src), "outputs": [str(t) for t in targets], "codec": coder.codec.kind,
            "output_bytes": sum(len(d) for _, d in plan), "seconds": time.perf_counter() - t0}


def output_paths(metadata: dict[str, Any], names: list[str], src: Path, out: str | Path | None) -> list[Path]:
    """Where each decoded file goes; refuses stored names that would leave the output folder and, without an
    explicit ``out``, outputs that already exist."""
    if metadata.get("folder"):
        root = Path(out) if out is not None else (src.with_suffix("") if src.suffix == SUFFIX else
                                                  src.parent / f"{src.name}.d")
        targets = [root.joinpath(*safe_relative(n).parts) for n in names]
    else:
        name = safe_relative(PurePosixPath(names[0]).name).name
        if out is None:
            targets = [src.parent / name]
        else:
            target = Path(out)
            targets = [target / name if target.is_dir() else target]
    if out is None:
        for t in targets:
            if t.exists():
                raise ConfigError(f"{t} already exists; choose the output with --out")
    return targets


def safe_relative(name: str) -> PurePosixPath:
    """A stored file name as a relative path; :class:`CompressedFileError` for one that could leave its folder."""
    p = PurePosixPath(name)
    if not name or "\\" in name or p.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise CompressedFileError(f"refusing the stored file name {name!r}: not a plain relative path")
    return p
