"""ONNX export time: the torch.export-based exporter (``dynamo=True``, the one chainrule uses) against the
TorchScript exporter it replaced, per registered image and text model, each graph verified against PyTorch.

Models are built at their default sizes (images 1x28x28 binary, text context 256 over 256 byte tokens; ``--quick``:
the models' TINY options on 1x8x8 images and context 16, a check that it works in seconds). Reported: seconds per
export for each exporter (the best of ``--repeats``, in a warm process; the first dynamo export of a process also
pays a one-off start-up, reported separately), the number of graph nodes, and the largest |ONNX - PyTorch|.
Times are CPU seconds of the process (all its threads), which a busy machine disturbs less than wall time.

    .venv/bin/python bench/onnx_export.py            # default sizes
    .venv/bin/python bench/onnx_export.py --quick    # tiny sizes

Writes bench/results/onnx_export.json and .md (``--quick``: onnx_export-quick.*).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import onnx
import torch

from chainrule.export import onnx as onnx_export
from chainrule.export.plan import NOT_EXPORTABLE, plan_export
from chainrule.export.verify import check_parity
from chainrule.modalities.registry import MODELS, build_model, model_class

HERE = Path(__file__).resolve().parent


def models(quick: bool) -> list[tuple[str, str, torch.nn.Module]]:
    out = []
    for modality, name in sorted(MODELS):
        cls = model_class(name, modality)
        if modality not in ("image", "text") or name in NOT_EXPORTABLE or getattr(cls, "family",
                                                                                "autoregressive") != "autoregressive":
            continue
        options = dict(cls.TINY) if quick else {}
        if modality == "text":
            shape, levels, head = (1, 16 if quick else 256), 256, "categorical"
        else:
            shape, levels, head = (1, 8, 8) if quick else (1, 28, 28), 2, None
        torch.manual_seed(0)
        out.append((modality, name, build_model(name, shape, levels, head=head, modality=modality, **options).eval()))
    return out


def time_export(export, plan, path: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        export(plan, path)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny models: a check that the script works")
    ap.add_argument("--repeats", type=int, default=2, help="exports per exporter and model (best kept)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        warm = models(True)[0][2]
        start = time.process_time()
        onnx_export._export_dynamo(plan_export(warm), path)
        startup = time.process_time() - start
        for modality, name, model in models(a.quick):
            plan = plan_export(model)
            row = {"modality": modality, "model": name,
                   "params": sum(p.numel() for p in model.parameters())}
            for label, export in (("torchscript", onnx_export._export_torchscript),
                                  ("dynamo", onnx_export._export_dynamo)):
                row[f"{label}_s"] = round(time_export(export, plan, path, a.repeats), 3)
                proto = onnx.load(str(path))
                row[f"{label}_nodes"] = len(proto.graph.node)
                row[f"{label}_max_diff"] = check_parity(plan, proto.SerializeToString(), onnx_export.TOLERANCE)
            rows.append(row)
            print(row, flush=True)
    result = {"quick": a.quick, "torch": torch.__version__, "onnx": onnx.__version__, "machine": platform.machine(),
              "threads": torch.get_num_threads(), "first_dynamo_export_s": round(startup, 3), "rows": rows}
    stem = "onnx_export-quick" if a.quick else "onnx_export"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| modality | model | params | TorchScript (CPU s) | dynamo (CPU s) | nodes TS / dynamo "
             "| max diff TS / dynamo |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['modality']} | {r['model']} | {r['params']:,} | {r['torchscript_s']:.2f} | "
                     f"{r['dynamo_s']:.2f} | {r['torchscript_nodes']} / {r['dynamo_nodes']} | "
                     f"{r['torchscript_max_diff']:.1e} / {r['dynamo_max_diff']:.1e} |")
    lines.append(f"\nFirst dynamo export of the process (start-up): {startup:.2f} CPU s.")
    (HERE / "results" / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
