"""Batched generation and choice scoring for the native ChatGLM models.

The loop is built for throughput, like :mod:`inference.fastpath` for Llama-family models:

- prompts are left-padded to one width, so every row writes its next key and value at the
  same cache index;
- the KV cache is allocated once per call, for batch × (prompt + ``max_new_tokens``), and
  written in place (:class:`~inference.chatglm.state.KVCache`);
- the prompt is prefilled in slices of rows, which bounds activation memory at large batches;
- on CUDA the single-token decode step can be captured as CUDA graphs (one per 64-token
  bucket of cache length, kept for the next batch of as many rows) and/or compiled with
  ``torch.compile``; on the CPU it runs eagerly over the exact cache length, which keeps it
  numerically the original's.

Sampling (temperature, top-p, repetition penalty, a seed; per row) is fastpath's, so both
engines pick tokens the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from inference.chatglm.loader import ChatGLMModel
from inference.chatglm.state import KVCache, PromptBatch
from inference.fastpath import BUCKET, CapturedSteps, Decoded, Sampler, decode

PREFILL_TOKENS = 8192  # rows per prefill slice = this // prompt width
# ``attention=`` names for torch's SDPA kernels (None: torch chooses per call).
ATTENTION_KERNELS = ("cudnn", "efficient", "flash", "math")


def _enable_many_compiled_shapes() -> None:
    """Each cache-length bucket is its own compiled graph; allow more than dynamo's 8."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 256))


class Generator:
    """Generation and scoring with one loaded ChatGLM model."""

    def __init__(
        self,
        model: ChatGLMModel,
        cuda_graphs: bool = True,
        compile: bool = False,
        prefill_tokens: int = PREFILL_TOKENS,
        attention: str | None = None,
    ) -> None:
        if attention is not None and attention not in ATTENTION_KERNELS:
            raise ValueError(
                f"attention={attention!r}: expected one of {', '.join(ATTENTION_KERNELS)} or None"
            )
        self.attention = attention
        self.model = model
        config = model.config
        self.config = config
        # The first floating-point parameter is the embedding table: the activations' dtype
        # (an int8 model keeps its int8 weights as buffers).
        embeddings = next(p for p in model.parameters() if p.is_floating_point())
        self.device, self.dtype = embeddings.device, embeddings.dtype
        on_cuda = self.device.type == "cuda"
        self.cuda_graphs = cuda_graphs and on_cuda
        self.compile = compile
        # Buckets keep the number of distinct step shapes (graphs, compilations) small; eager
        # steps on the CPU read exactly the filled cache, as the original does.
        self.bucket = BUCKET if (self.cuda_graphs or compile) else 1
        self.prefill_tokens = prefill_tokens
        self._decode = self._decode_step
        self._graphed: CapturedSteps | None = None
        if compile:
            _enable_many_compiled_shapes()
            # Dynamic shapes: one compilation serves every cache-length bucket and batch size.
            self._decode = torch.compile(self._decode_step, dynamic=True)

    @contextlib.contextmanager
    def _attention_kernel(self) -> Iterator[None]:
        """Torch's SDPA restricted to the kernel named by ``attention`` (captured graphs keep
        the kernel they were captured with)."""
        if self.attention is None:
            yield
            return
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = {
            "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "flash": SDPBackend.FLASH_ATTENTION,
            "math": SDPBackend.MATH,
        }[self.attention]
        with sdpa_kernel(backend):
            yield

    # -- the model, once ---------------------------------------------------------------------

    def _prefill(self, batch: PromptBatch, cache: KVCache) -> torch.Tensor:
        """Run the prompts in slices of rows, filling ``cache``; last-position logits [b, V]."""
        rows_total, width = batch.ids.shape
        last = torch.empty(
            rows_total, self.config.hidden_size, dtype=self.dtype, device=self.device
        )
        index = torch.arange(width, device=self.device)
        step = max(1, self.prefill_tokens // width)
        for first in range(0, rows_total, step):
            rows = slice(first, min(first + step, rows_total))
            hidden = self.model(
                batch.ids[rows],
                batch.positions[rows],
                batch.mask(rows),
                cache.rows(rows),
                index,
                width,
            )
            last[rows] = hidden[:, -1]
        return self.model.logits(last).float()

    def _decode_step(
        self,
        token: torch.Tensor,
        positions: torch.Tensor,
        index: torch.Tensor,
        allowed: torch.Tensor | None,
        cache: KVCache,
        length: int,
    ) -> torch.Tensor:
        """Logits [b, V] of one new token per row, written at cache position ``index``."""
        hidden = self.model(token[:, None], positions, allowed, cache, index, length)
        return self.model.logits(hidden[:, -1]).float()

    # -- generation ------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        stop_ids: set[int],
        pad_id: int,
        temperature: float | list[float] = 0.0,
        top_p: float | list[float] = 1.0,
        repetition_penalty: float | list[float] = 1.0,
        seed: int | None = None,
        on_logits: Callable[[int, torch.Tensor], None] | None = None,
    ) -> list[Decoded]:
        """Continue every prompt by up to ``max_new_tokens`` tokens, all rows together.

        Sampling settings are one value for all rows or one per row; temperature 0 is
        greedy. ``on_logits(step, logits)`` sees the raw next-token logits [b, V] of each
        step before sampling (tests compare them with the original's).
        """
        with self._attention_kernel():
            batch = self.model.prompt_batch(prompts, pad_id)
            rows, width = batch.ids.shape
            total = -(-(width + max_new_tokens) // self.bucket) * self.bucket
            if self.cuda_graphs:
                step = self._graphed_steps(rows, total, batch.next_positions)
                cache, valid = step.cache, step.valid
            else:
                cache = self._allocate(rows, total)
                valid = torch.empty(rows, total, dtype=torch.bool, device=self.device)
                step = self._eager_steps(cache, valid, bool(batch.valid.all()))
            valid.fill_(True)
            valid[:, :width] = batch.valid
            logits = self._prefill(batch, cache)

            sampler = Sampler(
                batch.ids,
                batch.valid,
                logits.shape[-1],
                temperature,
                top_p,
                repetition_penalty,
                seed,
            )
            return decode(
                sampler, logits, step, batch.next_positions, batch.position_step, width,
                max_new_tokens, stop_ids, pad_id, on_logits,
            )  # fmt: skip

    def _allocate(self, rows: int, length: int) -> KVCache:
        config = self.config
        return KVCache.allocate(
            config.num_layers, rows, config.kv_groups, length, config.head_dim, self.dtype,
            self.device,
        )  # fmt: skip

    def _eager_steps(
        self, cache: KVCache, valid: torch.Tensor, unpadded: bool
    ) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
        """One decode step: (tokens [b], positions, cache index) → logits [b, V]."""
        arange = torch.arange(valid.shape[1], device=self.device)

        def step(token: torch.Tensor, positions: torch.Tensor, index: int) -> torch.Tensor:
            length = min(-(-(index + 1) // self.bucket) * self.bucket, valid.shape[1])
            allowed = None
            if not (unpadded and self.bucket == 1):
                allowed = (valid[:, :length] & (arange[:length] <= index))[:, None, None, :]
            at = torch.tensor([index], device=self.device)
            return self._decode(token, positions, at, allowed, cache, length)

        return step

    def _graphed_steps(self, rows: int, total: int, positions: torch.Tensor) -> CapturedSteps:
        """The captured steps (with their cache) of the last call when it had ``rows`` rows
        and a cache of at least ``total`` positions (see CapturedSteps), else new ones."""
        if self._graphed is None or not self._graphed.fits(rows, total, tuple(positions.shape)):
            self._graphed = None  # free the old graphs and cache before allocating new ones
            cache = self._allocate(rows, total)
            valid = torch.ones(rows, total, dtype=torch.bool, device=self.device)
            self._graphed = CapturedSteps(
                lambda token, positions, index, allowed, length: self._decode(
                    token, positions, index, allowed, cache, length
                ),
                cache, valid, (rows,), positions, warmups=2,
            )  # fmt: skip
        return self._graphed

    # -- constrained choice ----------------------------------------------------------------

    @torch.inference_mode()
    def score(self, prompt: list[int], choices: list[list[int]], pad_id: int) -> list[float]:
        """Mean log-probability per token of each choice as the continuation of ``prompt``.

        The prompt runs once; its cache rows are copied to every choice, and the choices run
        together (right-padded, so a pad never precedes a real token).
        """
        with self._attention_kernel():
            count, width = len(choices), max(1, *(len(c) for c in choices))
            batch = self.model.prompt_batch([prompt], pad_id)
            length = batch.ids.shape[1]
            cache = self._allocate(count, length + width)
            first = self._prefill(batch, cache.rows(slice(0, 1)))
            cache.copy_prefix(0, length)
            ids = torch.tensor(
                [c + [pad_id] * (width - len(c)) for c in choices], device=self.device
            )
            steps = torch.arange(width, device=self.device)
            positions = batch.next_positions + batch.position_step * steps
            index = torch.arange(length, length + width, device=self.device)
            keys = torch.arange(length + width, device=self.device)
            allowed = (keys[None, :] < length) | (keys[None, :] - length <= steps[:, None])
            allowed = allowed.expand(count, 1, width, length + width)
            positions = positions.expand(count, *positions.shape[1:])
            hidden = self.model(ids, positions, allowed, cache, index, length + width)
            # Choice token j is predicted by the prompt's last logits (j = 0) or by token j - 1.
            logits = torch.cat(
                [first.expand(count, 1, -1), self.model.logits(hidden[:, :-1]).float()], 1
            )
            picked = torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1).cpu()
        return [
            float(picked[row, : len(c)].sum()) / max(len(c), 1) for row, c in enumerate(choices)
        ]
