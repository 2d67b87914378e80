"""ChatGLM's tokenizers, on sentencepiece alone (no remote code).

**ChatGLM2/3** (``tokenizer.model``): plain sentencepiece ids, then nine special tokens
numbered after the sentencepiece vocabulary — ``[MASK] [gMASK] [sMASK] sop eop`` and, for
ChatGLM3, ``<|system|> <|user|> <|assistant|> <|observation|>``. Text that merely looks like
a special token ("<|user|>" typed in an email) is encoded as text, never as the token.
Every prompt starts with ``[gMASK] sop``.

**ChatGLM-6B** (``ice_text.model``): before sentencepiece, newlines become ``<n>``, tabs
``<|tab|>`` and runs of 2–80 spaces ``<|blank_n|>`` (longest first); decoding maps them
back. Its special tokens ([gMASK], <sop>, <eop> …) are pieces of that vocabulary, with the
ids the model's config names. Every prompt *ends* with ``[gMASK] <sop>``.
"""

from __future__ import annotations

from pathlib import Path

from inference.chatglm.config import ChatGLMConfig
from inference.types import ModelLoadError

MAX_BLANK = 80
V2_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
V3_ROLES = ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")


def _processor(path: Path):
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError as exc:  # pragma: no cover - a requirement
        raise ModelLoadError(f"ChatGLM's tokenizer needs sentencepiece: {exc}") from exc
    try:
        return SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"{path} is not a sentencepiece model: {exc}") from exc


class GLM3Tokenizer:
    """ChatGLM2/3's tokenizer: sentencepiece ids, then the special tokens after them."""

    def __init__(self, model_file: str | Path, roles: bool = True) -> None:
        self.sp = _processor(Path(model_file))
        names = V2_SPECIALS + (V3_ROLES if roles else ())
        first = self.sp.vocab_size()
        self.special_ids = {name: first + i for i, name in enumerate(names)}
        self.special_names = {i: name for name, i in self.special_ids.items()}
        self.pad_id = self.sp.unk_id()  # 0, as the original pads
        self.eos_id = self.sp.eos_id()
        self.prefix = [self.special_ids["[gMASK]"], self.special_ids["sop"]]

    @property
    def vocab_size(self) -> int:
        """Ids in use, specials included (the model's rows beyond them are padding)."""
        return self.sp.vocab_size() + len(self.special_ids)

    def encode(self, text: str) -> list[int]:
        """Sentencepiece ids of ``text``, with its dummy-prefix "▁"; no special tokens."""
        return self.sp.encode(text)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``. Special tokens are written by name unless skipped; ids past the
        vocabulary (the model's padded rows) are dropped."""
        pieces = []
        for i in ids:
            if i in self.special_names:
                if not skip_special_tokens:
                    pieces.append(self.special_names[i])
            elif 0 <= i < self.sp.vocab_size():
                pieces.append(self.sp.id_to_piece(i))
        # Decoding pieces, special names included, drops the dummy-prefix space only at the
        # very start, as the original's decode does ("[gMASK]sop 你好").
        return self.sp.decode_pieces(pieces)

    def role(self, name: str) -> int:
        """Id of a ChatGLM3 role token: "system", "user", "assistant" or "observation"."""
        return self.special_ids[f"<|{name}|>"]

    def message(self, role: str, content: str, metadata: str = "") -> list[int]:
        """One ChatGLM3 turn: the role token, the metadata line, then the content."""
        return [self.role(role), *self.encode(f"{metadata}\n"), *self.encode(content)]


def blank_encode(text: str) -> str:
    """ChatGLM-6B's text before sentencepiece: newlines, tabs and runs of spaces as tokens."""
    text = text.replace("\n", "<n>").replace("\t", "<|tab|>")
    for length in range(MAX_BLANK, 1, -1):
        text = text.replace(" " * length, f"<|blank_{length}|>")
    return text


def blank_decode(text: str) -> str:
    """The inverse of :func:`blank_encode`, applied to decoded text."""
    text = text.replace("<n>", "\n").replace("<|tab|>", "\t")
    for length in range(2, MAX_BLANK + 1):
        text = text.replace(f"<|blank_{length}|>", " " * length)
    return text


class GLM1Tokenizer:
    """ChatGLM-6B's tokenizer: :func:`blank_encode`, then ``ice_text.model``."""

    def __init__(self, model_file: str | Path, config: ChatGLMConfig) -> None:
        self.sp = _processor(Path(model_file))
        self.gmask_id, self.bos_id = config.gmask_id, config.bos_id
        self.eos_id, self.pad_id = config.eos_id, config.pad_id
        specials = (config.mask_id, config.gmask_id, config.bos_id, config.eos_id, config.pad_id)
        self.special = {i for i in specials if i is not None}

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` (with the dummy prefix), no special tokens."""
        return self.sp.encode(blank_encode(text))

    def prompt(self, text: str) -> list[int]:
        """A whole prompt: the text, then ``[gMASK] <sop>``."""
        return [*self.encode(text), self.gmask_id, self.bos_id]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``, with newlines, tabs and blanks restored."""
        size = self.sp.vocab_size()
        kept = [i for i in ids if 0 <= i < size and not (skip_special_tokens and i in self.special)]
        return blank_decode(self.sp.decode(kept))


def load_tokenizer(folder: str | Path, config: ChatGLMConfig) -> GLM1Tokenizer | GLM3Tokenizer:
    """The tokenizer of the checkpoint in ``folder``; ModelLoadError names a missing file."""
    folder = Path(folder)
    if config.version == 1:
        path = folder / "ice_text.model"
        if not path.exists():
            raise ModelLoadError(
                f"{folder} lacks ice_text.model, ChatGLM-6B's tokenizer; copy it from the "
                "THUDM/chatglm-6b download (it is a Git LFS file: fetch it with git lfs pull)"
            )
        return GLM1Tokenizer(path, config)
    path = folder / "tokenizer.model"
    if not path.exists():
        raise ModelLoadError(f"{folder} lacks tokenizer.model, the sentencepiece tokenizer")
    return GLM3Tokenizer(path, roles=config.chat_format == "chatglm3")
