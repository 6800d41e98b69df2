"""Load a saved torch or TensorFlow model as one numpy-in, numpy-out callable.

torch: TorchScript (``torch.jit.save``), ``torch.export`` programs (``.pt2``), or a state dict
with the ``nn.Module`` class named by import path. TensorFlow: a SavedModel directory (its
``serving_default`` signature) or a Keras file. Models run on CPU, or on the first visible GPU
when torch sees one. Each framework is imported only when a model of it is loaded.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aicloud.inference.options import Datatype, InferenceOptions, ModelFormat

NUMPY_TYPES = {
    Datatype.FP32: np.float32,
    Datatype.FP64: np.float64,
    Datatype.FP16: np.float16,
    Datatype.INT64: np.int64,
    Datatype.INT32: np.int32,
    Datatype.INT16: np.int16,
    Datatype.INT8: np.int8,
    Datatype.UINT8: np.uint8,
    Datatype.BOOL: np.bool_,
}
DATATYPES = {np.dtype(v): k for k, v in NUMPY_TYPES.items()}


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says why and names the field."""


@dataclass
class LoadedModel:
    """A model ready to predict: ``predict(batch) -> batch`` on numpy arrays."""

    predict: Callable[[np.ndarray], np.ndarray]
    framework: str
    platform: str
    row_shape: list[int] | None  # one row's shape, -1 where any size goes; None if unknown


def datatype_of(array: np.ndarray) -> Datatype:
    """The Open Inference Protocol datatype of a numpy array."""
    try:
        return DATATYPES[array.dtype]
    except KeyError:
        raise ValueError(f"no Open Inference Protocol datatype for numpy {array.dtype}") from None


def import_class(path: str, cwd: Path):
    """``module.path:ClassName``, importable from ``cwd`` as well as the environment."""
    module_name, _, class_name = path.partition(":")
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as e:
        raise ModelLoadError(f"inference.model_class: cannot import {path!r}: {e}") from None


def _torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _torch_predictor(module, device) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().cpu().numpy()

    return predict


def _export_row_shape(program) -> list[int] | None:
    """One row's shape from an ExportedProgram's first user input (symbolic sizes: -1)."""
    names = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            value = node.meta.get("val")
            if value is None:
                return None
            return [int(d) if isinstance(d, int) else -1 for d in value.shape[1:]]
    return None


def load_torch(options: InferenceOptions, path: Path, cwd: Path) -> LoadedModel:
    """A TorchScript, ``torch.export`` or state-dict model."""
    import torch

    device = _torch_device()
    fmt = options.resolved_format
    row_shape = None
    try:
        if fmt is ModelFormat.torchscript:
            with warnings.catch_warnings():  # deprecated in torch 2.13, still what many saved
                warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)
        elif fmt is ModelFormat.torch_export:
            program = torch.export.load(str(path))
            row_shape = _export_row_shape(program)
            module = program.module().to(device)
        else:
            module_class = import_class(options.model_class or "", cwd)
            module = module_class(**options.model_kwargs)
            state = torch.load(str(path), map_location=device, weights_only=True)
            module.load_state_dict(state)
            module.to(device)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"inference.model: cannot load {fmt.value} model: {e}") from None
    if hasattr(module, "eval") and fmt is not ModelFormat.torch_export:
        module.eval()
    return LoadedModel(_torch_predictor(module, device), "torch", f"pytorch_{fmt.value}", row_shape)


def _tf_shape(shape) -> list[int] | None:
    """One row's shape from a Keras tuple or a ``TensorShape`` (unknown sizes: -1)."""
    if getattr(shape, "rank", 0) is None:
        return None
    return [-1 if d is None else int(d) for d in list(shape)[1:]]


def load_tensorflow(options: InferenceOptions, path: Path) -> LoadedModel:
    """A SavedModel directory (``serving_default``) or a Keras file."""
    import tensorflow as tf

    fmt = options.resolved_format
    try:
        if fmt is ModelFormat.keras:
            import keras

            model = keras.models.load_model(str(path), compile=False)
            shape = _tf_shape(model.inputs[0].shape) if model.inputs else None

            def predict(batch: np.ndarray) -> np.ndarray:
                out = model(batch, training=False)
                if isinstance(out, (list, tuple)):
                    out = out[0]
                return np.asarray(out)

            return LoadedModel(predict, "tensorflow", "tensorflow_keras", shape)
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as e:
        raise ModelLoadError(f"inference.model: cannot load {fmt.value} model: {e}") from None
    (input_name, spec), *rest = signature.structured_input_signature[1].items()
    if rest:
        raise ModelLoadError("inference.model: SavedModels with more than one input are not served")
    output_name = sorted(signature.structured_outputs)[0]

    def predict_saved(batch: np.ndarray) -> np.ndarray:
        out = signature(**{input_name: tf.constant(batch)})
        return out[output_name].numpy()

    return LoadedModel(predict_saved, "tensorflow", "tensorflow_savedmodel", _tf_shape(spec.shape))


def load_model(options: InferenceOptions, cwd: Path) -> LoadedModel:
    """Load ``options.model`` (relative to ``cwd``) in its format."""
    path = cwd / options.model
    if not path.exists():
        raise ModelLoadError(f"inference.model: {options.model!r} not found in {cwd}")
    fmt = options.resolved_format
    if fmt in (ModelFormat.savedmodel, ModelFormat.keras):
        loaded = load_tensorflow(options, path)
    else:
        loaded = load_torch(options, path, cwd)
    if options.input_shape is not None:
        loaded.row_shape = list(options.input_shape)
    return loaded
