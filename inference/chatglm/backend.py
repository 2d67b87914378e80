"""The chatglm engine: a ChatGLM-6B, ChatGLM2-6B or ChatGLM3-6B folder, run natively.

The checkpoints' own ``trust_remote_code`` files were written for transformers 4.2x–4.3x
and do not run on the transformers we pin; this engine needs none of them. The registry
hands a ChatGLM folder to it when the transformers engine is configured, so
``REPLYHUB_MODEL=/path/to/chatglm3-6b`` is all a user sets.

Options, from the constructor or else the environment:

- ``REPLYHUB_CHATGLM_QUANTIZE=int8``: int8 weights for the blocks' Linear layers (half the
  memory of bf16; see :mod:`inference.chatglm.quantize`).
- ``REPLYHUB_CHATGLM_CUDA_GRAPHS`` (default 1): capture the decode step as CUDA graphs.
- ``REPLYHUB_CHATGLM_COMPILE`` (default 0): ``torch.compile`` the decode step (slow to warm up).
"""

from __future__ import annotations

import logging
import os
import time
from itertools import groupby
from pathlib import Path

from inference.chatglm import chat
from inference.chatglm.config import read_config
from inference.types import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    ModelLoadError,
)

log = logging.getLogger(__name__)


def _env_flag(name: str, default: str) -> bool:
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


class ChatGLMBackend:
    """Batched generation and choice scoring with a native ChatGLM model."""

    name = "chatglm"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        quantize: str | None = None,
        cuda_graphs: bool | None = None,
        compile: bool | None = None,
    ) -> None:
        path = Path(model)
        if not path.is_dir():
            raise ModelLoadError(f"ChatGLM model folder not found at {model}")
        from inference.chatglm.generate import Generator
        from inference.chatglm.loader import load_model
        from inference.chatglm.tokenizer import load_tokenizer
        from inference.transformers_backend import pick_device

        config = read_config(path)
        self.config = config
        self.tokenizer = load_tokenizer(path, config)  # before the weights: fail fast
        self.device, dtype_name = pick_device(device)
        if quantize is None:
            quantize = os.getenv("REPLYHUB_CHATGLM_QUANTIZE", "").strip().lower()
        if cuda_graphs is None:
            cuda_graphs = _env_flag("REPLYHUB_CHATGLM_CUDA_GRAPHS", "1")
        if compile is None:
            compile = _env_flag("REPLYHUB_CHATGLM_COMPILE", "0")
        if quantize not in ("", "int8"):
            raise ModelLoadError(f"REPLYHUB_CHATGLM_QUANTIZE={quantize!r}: use int8 or nothing")
        started = time.monotonic()
        log.info(
            "Loading %s (%s) on %s (%s%s)",
            model, config.chat_format, self.device, dtype_name, ", int8" if quantize else "",
        )  # fmt: skip
        try:
            self.model = load_model(path, self.device, dtype_name, quantize, progress=log.info)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"Could not load the model at {model}: {exc}") from exc
        self.generator = Generator(self.model, cuda_graphs=cuda_graphs, compile=compile)
        self.model_name = path.name
        self.stop_ids = {self.tokenizer.eos_id}
        if config.chat_format == "chatglm3":
            # As ChatGLM3's chat(): a turn also ends where the model starts the next one.
            self.stop_ids |= {self.tokenizer.role("user"), self.tokenizer.role("observation")}
        log.info("Model loaded in %.1f s", time.monotonic() - started)

    # -- generation ------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for all requests, one batch per length limit (sampling is per row)."""
        key = lambda item: item[1].sampling.max_new_tokens  # noqa: E731
        results: dict[int, GenerationResult] = {}
        for _, group in groupby(sorted(enumerate(requests), key=key), key=key):
            batch = list(group)
            outputs = self._generate_batch([r for _, r in batch])
            results.update({index: out for (index, _), out in zip(batch, outputs, strict=True)})
        return [results[i] for i in range(len(requests))]

    def _prompt(self, request: GenerationRequest | ChoiceRequest) -> list[int]:
        ids = chat.prompt_ids(self.tokenizer, self.config.chat_format, request.messages)
        if len(ids) >= self.config.max_positions:
            raise ValueError(
                f"The prompt has {len(ids)} tokens; the model reads at most "
                f"{self.config.max_positions}"
            )
        return ids

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        started = time.monotonic()
        prompts = [self._prompt(r) for r in requests]
        # Positions past the model's table do not exist: shorten the reply, not the prompt.
        room = self.config.max_positions - max(len(p) for p in prompts)
        max_new = min(requests[0].sampling.max_new_tokens, room)
        rows = self.generator.generate(
            prompts,
            max_new,
            self.stop_ids,
            self.tokenizer.pad_id,
            temperature=[r.sampling.temperature for r in requests],
            top_p=[r.sampling.top_p for r in requests],
            repetition_penalty=[r.sampling.repetition_penalty for r in requests],
            seed=next((r.sampling.seed for r in requests if r.sampling.seed is not None), None),
        )
        seconds = time.monotonic() - started
        results = []
        for prompt, row in zip(prompts, rows, strict=True):
            tokens = row.tokens[:-1] if row.stopped else row.tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            results.append(
                GenerationResult(
                    text=chat.clean_reply(text, self.config.chat_format),
                    prompt_tokens=len(prompt),
                    completion_tokens=len(row.tokens),
                    seconds=seconds,
                    finish_reason="stop" if row.stopped else "length",
                )
            )
        return results

    # -- constrained choice ----------------------------------------------------------------

    def score_choices(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        """Mean log-probability per token of each choice as the model's answer."""
        results = []
        for request in requests:
            started = time.monotonic()
            # ChatGLM3 answers after a metadata line; it is part of the prompt, not the choice.
            prompt = self._prompt(request) + chat.answer_prefix(
                self.tokenizer, self.config.chat_format
            )
            choices = [self.tokenizer.encode(c) for c in request.choices]
            scores = self.generator.score(prompt, choices, self.tokenizer.pad_id)
            results.append(ChoiceResult(tuple(scores), len(prompt), time.monotonic() - started))
        return results
