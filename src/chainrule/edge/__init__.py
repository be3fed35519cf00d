"""Torch-free runtime for models exported with ``chainrule export``: numpy and onnxruntime only.

>>> from chainrule.edge import EdgeModel, generate_text
>>> model = EdgeModel("model.onnx")
>>> print("".join(generate_text(model, "ROMEO:", max_new_tokens=100, temperature=0.8)))

Command line: ``chainrule-edge generate|sample|forecast|info MODEL.onnx ...`` (``python -m chainrule.edge``).
"""

from chainrule.edge.audio import sample_audio
from chainrule.edge.errors import EdgeError
from chainrule.edge.forecast import forecast, sample_paths
from chainrule.edge.images import sample_images, save_samples
from chainrule.edge.model import EdgeModel
from chainrule.edge.text import generate_text, generate_tokens

__all__ = ["EdgeError", "EdgeModel", "forecast", "generate_text", "generate_tokens", "sample_audio", "sample_images",
           "sample_paths", "save_samples"]
