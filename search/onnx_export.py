"""Build the cached ONNX files for the embedding model: fp32 export and int8 quantisation.

Only the export imports torch and transformers, lazily; the int8 step needs onnx and
onnxruntime.quantization. Each variant is built in a temporary directory that is renamed into place,
and a lock file serialises concurrent builders, so a reader never sees half a model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from search.errors import ModelError
from search.generations import exclusive

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
OPSET = 17
# Dynamic int8 recipe: per-channel weights, only weight-times-activation MatMuls (the
# activation-times-activation attention products stay fp32). Change the directory name when
# the recipe changes so old caches are not reused.
INT8_DIR = "int8-pc"
FP32_DIR = "fp32"
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"


def build_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on ``directory/.lock``."""
    directory.mkdir(parents=True, exist_ok=True)
    return exclusive(directory / ".lock")


def ensure_built(target: Path, build: Callable[[Path], None]) -> Path:
    """``target/model.onnx``, built first (once, under the parent's lock) if missing.

    ``build(path)`` writes a single-file model; it is re-saved with its weights in
    ``model.onnx.data`` (which ONNX Runtime memory-maps: faster session start) inside a
    temporary directory that is then renamed to ``target`` in one step.
    """
    model = target / MODEL_FILE
    if model.exists():
        return model
    with build_lock(target.parent):
        if model.exists():
            return model
        for stale in target.parent.glob(f".{target.name}.*"):  # left by a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(tmp / MODEL_FILE)
            _externalise(tmp / MODEL_FILE)
            for path in (tmp, *tmp.iterdir()):
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            if target.exists():  # left by hand or by an older layout
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return model


def _externalise(path: Path) -> None:
    """Move the weights of the model at ``path`` into ``model.onnx.data`` beside it."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=DATA_FILE,
        size_threshold=1024,
    )


def export_fp32(model_path: Path, out: Path) -> None:
    """Export the transformer of ``model_path`` to ONNX (dynamic batch and sequence axes)."""
    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelError(
            f"exporting {model_path} to ONNX needs torch and transformers ({exc}); "
            "pip install torch transformers, or copy an exported model.onnx into the model cache"
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()

    class Wrapper(torch.nn.Module):
        """Positional forward for the exporter; transformers 5 wants keyword arguments."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: D102
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Eager attention traces to plain MatMul/Softmax, which ONNX Runtime fuses well.
            model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()
            sample = _sample_inputs(torch, batch=2, seq=8)
            axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
            wrapper = Wrapper(model).eval()  # the exporter restores this mode on the way out
            with torch.no_grad():
                torch.onnx.export(
                    wrapper,
                    sample,
                    str(out),
                    input_names=list(INPUT_NAMES),
                    output_names=[OUTPUT_NAME],
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
                _check_export(model, out, _sample_inputs(torch, batch=3, seq=13))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"could not export {model_path} to ONNX: {exc}") from exc


def _sample_inputs(torch, batch: int, seq: int) -> tuple:
    """Right-padded random token ids; the last row is shorter than the rest."""
    gen = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(1000, 20000, (batch, seq), generator=gen)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    mask[-1, seq // 2 :] = 0
    ids[-1, seq // 2 :] = 0
    ids[-1, seq // 2 - 1] = 102
    return ids, mask, torch.zeros_like(ids)


def _check_export(model, onnx_path: Path, sample: tuple) -> None:
    """Compare ONNX Runtime with torch on shapes unlike the traced ones."""
    import numpy as np
    import onnxruntime as ort

    expected = model(input_ids=sample[0], attention_mask=sample[1], token_type_ids=sample[2]).last_hidden_state
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, sample, strict=True)})[0]
    mask = sample[1].numpy().astype(bool)
    err = float(np.abs(got - expected.numpy())[mask].max())
    if err > 1e-3:
        raise ModelError(f"exported ONNX model {onnx_path} differs from torch (max abs error {err:.2e})")


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamically quantise ``fp32`` to int8 weights (see INT8_DIR for the recipe)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelError(f"int8 quantisation needs onnx and onnxruntime ({exc}); pip install onnx onnxruntime") from exc
    try:
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(fp32),
                str(out),
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"MatMulConstBOnly": True},
            )
    except Exception as exc:
        raise ModelError(f"could not quantise {fp32} to int8: {exc}") from exc


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Silence the quantiser's advice, which it logs on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def ensure_fp32(model_path: Path, key_dir: Path) -> Path:
    """The fp32 export for ``model_path`` in ``key_dir``, exported on first use."""
    return ensure_built(key_dir / FP32_DIR, lambda out: export_fp32(model_path, out))


def ensure_int8(model_path: Path, key_dir: Path) -> Path:
    """The int8 model in ``key_dir``, quantised from the fp32 export on first use."""
    fp32 = ensure_fp32(model_path, key_dir)
    return ensure_built(key_dir / INT8_DIR, lambda out: quantize_int8(fp32, out))
