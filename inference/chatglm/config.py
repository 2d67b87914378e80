"""ChatGLM's ``config.json``, read as it ships with the checkpoints, and which ChatGLM it is.

Two architectures carry ``model_type: "chatglm"``:

- **ChatGLM-6B** (v1, 2023-03): GLM blocks with 2D rotary positions, a prefix-LM mask,
  GELU and DeepNorm-style residuals. Its config has ``position_encoding_2d`` and
  ``inner_hidden_size``.
- **ChatGLM2-6B and ChatGLM3-6B** (one architecture): RMSNorm, multi-query attention,
  rotary on half of each head, SwiGLU and a causal mask. Their config has
  ``multi_query_attention``, ``kv_channels``, ``ffn_hidden_size`` and ``padded_vocab_size``.
  They differ only in their tokenizer's role tokens and chat format, told apart by the
  checkpoint's name (``_name_or_path``).

Nothing here imports torch, so the registry can ask "is this folder a ChatGLM?" cheaply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inference.types import ModelLoadError

ARCHITECTURES = {"ChatGLMModel", "ChatGLMForConditionalGeneration", "ChatGLMForCausalLM"}


@dataclass(frozen=True)
class ChatGLMConfig:
    """The shape and special tokens of one ChatGLM checkpoint, in one vocabulary for both
    versions (``version`` 1, or 2 for ChatGLM2 and ChatGLM3)."""

    version: int
    chat_format: str  # "chatglm" (v1), "chatglm2" or "chatglm3"
    vocab_size: int  # rows of the embedding and the output layer (v2/3: padded_vocab_size)
    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    kv_groups: int  # key/value heads; v1 and multi_query_attention=false: num_heads
    ffn_size: int
    eps: float
    max_positions: int
    bos_id: int | None = None  # v1 <sop>; v2/3 read theirs from the tokenizer
    eos_id: int | None = None
    pad_id: int | None = None
    mask_id: int | None = None  # v1 [MASK]
    gmask_id: int | None = None  # v1 [gMASK]
    qkv_bias: bool = True
    linear_bias: bool = True  # v1: every Linear has a bias; v2/3: add_bias_linear
    residual_from_norm: bool = False  # v2/3 apply_residual_connection_post_layernorm
    post_layer_norm: bool = True
    rope_ratio: float = 1.0  # v2/3 long-context variants scale the rotary base
    tie_word_embeddings: bool = True

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token takes in a 16-bit dtype, over all layers."""
        return 2 * self.num_layers * self.kv_groups * self.head_dim * 2


def read_raw(folder: str | Path) -> dict | None:
    """The folder's ``config.json`` as a dict, or None when there is none or it is not JSON."""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_chatglm_folder(model: str | Path) -> bool:
    """True when ``model`` is a folder whose ``config.json`` describes a ChatGLM model."""
    path = Path(model)
    if not path.is_dir():
        return False
    raw = read_raw(path)
    if not isinstance(raw, dict):
        return False
    return raw.get("model_type") == "chatglm" or bool(
        ARCHITECTURES & set(raw.get("architectures") or [])
    )


def read_config(folder: str | Path) -> ChatGLMConfig:
    """The :class:`ChatGLMConfig` of a checkpoint folder; ModelLoadError says what is wrong."""
    raw = read_raw(folder)
    if raw is None:
        raise ModelLoadError(f"{folder} has no readable config.json")
    return parse_config(raw)


def parse_config(raw: dict) -> ChatGLMConfig:
    """A :class:`ChatGLMConfig` from the keys of an official ``config.json``."""
    _refuse_unsupported(raw)
    if _is_v2(raw):
        return _parse_v2(raw)
    if "position_encoding_2d" in raw or "inner_hidden_size" in raw:
        return _parse_v1(raw)
    raise ModelLoadError(
        "config.json looks like neither ChatGLM-6B (position_encoding_2d) nor "
        "ChatGLM2/3 (multi_query_attention, kv_channels)"
    )


def _is_v2(raw: dict) -> bool:
    return any(key in raw for key in ("multi_query_attention", "kv_channels", "padded_vocab_size"))


def _refuse_unsupported(raw: dict) -> None:
    # Pre-quantized (int4/int8) checkpoints store packed weights and scales under other
    # keys; the fp16 checkpoint with our own int8 option covers the same need.
    if raw.get("quantization_bit"):
        raise ModelLoadError(
            f"quantization_bit={raw['quantization_bit']}: pre-quantized ChatGLM checkpoints are "
            "not supported; use the fp16 checkpoint with REPLYHUB_CHATGLM_QUANTIZE=int8"
        )
    if raw.get("pre_seq_len"):
        raise ModelLoadError("P-tuning prefixes (pre_seq_len) are not supported")
    if _is_v2(raw):
        if raw.get("rmsnorm") is False:
            raise ModelLoadError("ChatGLM2/3 with rmsnorm=false is not supported")
        if raw.get("original_rope") is False:
            raise ModelLoadError("ChatGLM2/3 with original_rope=false is not supported")
    elif raw.get("position_encoding_2d") is False:
        raise ModelLoadError("ChatGLM-6B with position_encoding_2d=false is not supported")


def _parse_v1(raw: dict) -> ChatGLMConfig:
    hidden, heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
    if (hidden // heads) % 4:
        # Each half of a head is rotated in pairs of dims: head_dim must split in 4.
        raise ModelLoadError(f"head size {hidden // heads} is not a multiple of 4")
    return ChatGLMConfig(
        version=1,
        chat_format="chatglm",
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=int(raw["num_layers"]),
        num_heads=heads,
        head_dim=hidden // heads,
        kv_groups=heads,
        ffn_size=int(raw.get("inner_hidden_size") or 4 * hidden),
        eps=float(raw.get("layernorm_epsilon", 1e-5)),
        max_positions=int(raw.get("max_sequence_length", 2048)),
        bos_id=int(raw.get("bos_token_id", 130004)),
        eos_id=int(raw.get("eos_token_id", 130005)),
        pad_id=int(raw.get("pad_token_id", 3)),
        mask_id=int(raw.get("mask_token_id", 130000)),
        gmask_id=int(raw.get("gmask_token_id", 130001)),
        qkv_bias=True,
        linear_bias=True,
        tie_word_embeddings=True,  # the reference ties; the official file stores both copies
    )


def _parse_v2(raw: dict) -> ChatGLMConfig:
    hidden, heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
    head_dim = int(raw.get("kv_channels") or hidden // heads)
    groups = (
        int(raw.get("multi_query_group_num", heads)) if raw.get("multi_query_attention") else heads
    )
    if heads % groups:
        raise ModelLoadError(f"{heads} heads do not split into {groups} key/value groups")
    name = f"{raw.get('_name_or_path', '')} {raw.get('name_or_path', '')}".lower()
    return ChatGLMConfig(
        version=2,
        chat_format="chatglm2" if "chatglm2" in name else "chatglm3",
        vocab_size=int(raw.get("padded_vocab_size") or raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=int(raw["num_layers"]),
        num_heads=heads,
        head_dim=head_dim,
        kv_groups=groups,
        ffn_size=int(raw["ffn_hidden_size"]),
        eps=float(raw.get("layernorm_epsilon", 1e-5)),
        max_positions=int(raw.get("seq_length", 8192)),
        eos_id=_first(raw.get("eos_token_id")),
        pad_id=_first(raw.get("pad_token_id")),
        qkv_bias=bool(raw.get("add_qkv_bias", True)),
        linear_bias=bool(raw.get("add_bias_linear", False)),
        residual_from_norm=bool(raw.get("apply_residual_connection_post_layernorm", False)),
        post_layer_norm=bool(raw.get("post_layer_norm", True)),
        rope_ratio=float(raw.get("rope_ratio", 1.0)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
    )


def _first(value: object) -> int | None:
    if isinstance(value, list):
        return int(value[0]) if value else None
    return None if value is None else int(value)
