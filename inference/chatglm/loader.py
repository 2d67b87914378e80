"""Load a ChatGLM checkpoint folder as users download it, without its remote code.

The folder holds ``config.json`` and the weights in any of the official layouts: sharded
``pytorch_model-0000x-of-0000y.bin`` with ``pytorch_model.bin.index.json`` (how both
ChatGLM-6B and ChatGLM3-6B ship), a single ``pytorch_model.bin``, or safetensors, single or
sharded with ``model.safetensors.index.json``. ``.bin`` files are read with
``torch.load(weights_only=True)``: no pickled code runs.

The model is first built on the meta device (no memory), then each shard in turn is read
and its tensors are moved to the target device and dtype and put in place, so the weights
are allocated once, at their final place, and at most one shard is held on the side. With
``quantize="int8"`` each Linear weight is quantized as it arrives, so a GPU never holds the
fp16 model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from inference.chatglm.config import ChatGLMConfig, read_config
from inference.chatglm.model_v1 import ChatGLM1
from inference.chatglm.model_v2 import ChatGLM2
from inference.chatglm.quantize import Int8Linear
from inference.types import ModelLoadError

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
QUANTIZE = ("", "int8")

ChatGLMModel = ChatGLM1 | ChatGLM2


def build_model(
    config: ChatGLMConfig, dtype: torch.dtype = torch.float32, quantize: str = ""
) -> ChatGLMModel:
    """A model of ``config``'s architecture with uninitialised weights on the current device
    (build it under ``torch.device("meta")`` to allocate nothing)."""
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, not {quantize!r}")
    linear = Int8Linear if quantize == "int8" else nn.Linear
    model_class = ChatGLM1 if config.version == 1 else ChatGLM2
    model = model_class(config, linear=linear, dtype=dtype)
    model.set_exact(dtype == torch.float32)
    return model.eval()


def load_model(
    folder: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
    quantize: str = "",
    progress: Callable[[str], None] = lambda line: None,
) -> ChatGLMModel:
    """The checkpoint in ``folder`` on ``device`` in ``dtype``; ModelLoadError says what failed.

    ``progress`` receives one line per shard read. ``quantize="int8"`` stores the Linear
    weights of the blocks in int8 (see :mod:`inference.chatglm.quantize`).
    """
    folder = Path(folder)
    config = read_config(folder)
    dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    device = torch.device(device)
    shards = weight_files(folder)
    with torch.device("meta"):
        model = build_model(config, dtype, quantize)
    expected = {name for name, _ in _named_tensors(model)}
    loaded: set[str] = set()
    head: torch.Tensor | None = None  # v1's separate lm_head.weight, tied after the fact
    total = sum(path.stat().st_size for path in shards)
    done = 0
    for number, path in enumerate(shards, 1):
        try:
            for key, tensor in read_shard(path):
                if key.endswith(".inv_freq"):
                    continue  # rotary buffers: recomputed (v1's original ignores them too)
                if config.version == 1 and key == "lm_head.weight":
                    head = tensor.to(device=device, dtype=dtype)
                    continue
                if key not in expected:
                    raise ModelLoadError(f"{path.name}: unexpected tensor {key} for this config")
                _put(model, key, tensor, device, dtype)
                loaded.add(key)
        except ModelLoadError:
            raise
        except Exception as exc:  # unreadable, truncated, or a pickle that is not just tensors
            raise ModelLoadError(f"{path.name} could not be read: {exc}") from exc
        done += path.stat().st_size
        progress(
            f"ChatGLM weights: {number}/{len(shards)} files, "
            f"{done / 2**30:.1f} of {total / 2**30:.1f} GiB ({path.name})"
        )
    _finish_head(model, config, head, loaded)
    missing = sorted(expected - loaded)
    if missing:
        raise ModelLoadError(f"{folder}: the checkpoint lacks {', '.join(missing[:5])}")
    for name, buffer in list(model.named_buffers()):
        if buffer.device.type == "meta":
            raise ModelLoadError(f"{folder}: nothing loaded into {name}")
        if buffer.device != device:
            _set(model, name, buffer.to(device), parameter=False)
    return model


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint, in shard order; safetensors preferred over .bin."""
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = folder / index_name
        if index.exists():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (ValueError, KeyError) as exc:
                raise ModelLoadError(f"{index} is not a weight index: {exc}") from exc
            files = [folder / name for name in sorted(set(weight_map.values()))]
            absent = [f.name for f in files if not f.exists()]
            if absent:
                raise ModelLoadError(f"{folder} lacks {', '.join(absent)} named in {index_name}")
            return files
        if (folder / single).exists():
            return [folder / single]
    raise ModelLoadError(
        f"{folder} has no model.safetensors, pytorch_model.bin or an index of their shards"
    )


def read_shard(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, CPU tensor) of one weight file, one tensor at a time where the format allows."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as file:
            for key in file.keys():
                yield key, file.get_tensor(key)
        return
    try:
        # Memory-mapped: the shard's tensors are paged in as they are moved, not read whole.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        state = torch.load(path, map_location="cpu", weights_only=True)  # the legacy format
    yield from state.items()
    del state


def _named_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Parameters and persistent buffers a checkpoint must provide, tied ones once."""
    seen: set[int] = set()
    non_persistent = {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in module._non_persistent_buffers_set
    }
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if id(tensor) in seen or name in non_persistent:
            continue
        seen.add(id(tensor))
        if name.endswith(".scale"):
            continue  # an Int8Linear's scale comes with its weight
        yield name, tensor


def _put(
    model: nn.Module, key: str, tensor: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> None:
    """Place one checkpoint tensor in ``model`` at ``key``, converted on arrival."""
    path, _, name = key.rpartition(".")
    module = model.get_submodule(path)
    current = getattr(module, name)
    if tuple(tensor.shape) != tuple(current.shape):
        raise ModelLoadError(
            f"{key} has shape {tuple(tensor.shape)}, the config implies {tuple(current.shape)}"
        )
    if isinstance(module, Int8Linear) and name == "weight":
        # Quantized on the device, from the checkpoint's own precision: one fp16 matrix at a
        # time is all that ever sits there in full precision.
        module.load_weight(tensor.to(device))
        return
    _set(model, key, tensor.to(device=device, dtype=dtype), parameter=name in module._parameters)


def _set(model: nn.Module, key: str, tensor: torch.Tensor, parameter: bool) -> None:
    path, _, name = key.rpartition(".")
    module = model.get_submodule(path)
    if parameter:
        module._parameters[name] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[name] = tensor


def _finish_head(
    model: ChatGLMModel, config: ChatGLMConfig, head: torch.Tensor | None, loaded: set[str]
) -> None:
    """Tie or set v1's output layer: the official file stores ``lm_head.weight`` as a copy
    of the embeddings, our fixtures leave it out; the original ties the two either way."""
    if config.version == 1:
        model.tie_head()
        embeddings = model.transformer.word_embeddings.weight
        if head is not None and not torch.equal(head, embeddings):
            log.warning("lm_head.weight differs from the embeddings; using it untied")
            model.lm_head.weight = nn.Parameter(head, requires_grad=False)
        return
    if config.tie_word_embeddings and "transformer.output_layer.weight" not in loaded:
        model.tie_head()
        loaded.add("transformer.output_layer.weight")
