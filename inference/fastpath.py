"""Static-batch decoding for Llama-family models: a preallocated KV cache and CUDA graphs.

``transformers``' ``generate`` spends most of a decode step in Python on a GPU: for a
28-layer model that is hundreds of kernel launches per token, each waiting on the CPU.
This decoder runs the same weights (the Hugging Face modules themselves, so nothing is
copied) through a loop built for throughput:

- the whole batch is left-padded to one length, so every row writes its next key and
  value at the same cache index and one CUDA graph serves the whole batch;
- the KV cache is allocated for prompt + ``max_new_tokens``, and with CUDA graphs kept
  (with the graphs) for the next batch of as many rows that fits in it;
- attention reads the cache only up to the current length, rounded up to a 64-token
  bucket: each bucket has its own captured graph, so a step is one graph replay;
- the prompt is prefilled in slices of rows, which bounds activation memory at large
  batches, and with no padding uses the causal flash kernel.

Sampling (temperature, top-p, repetition penalty, a seed) happens outside the graph on
the logits it leaves in a static buffer. On the CPU the same loop runs without graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED = ("llama", "mistral", "qwen2")
BUCKET = 64
PREFILL_TOKENS = 8192  # rows per prefill slice = this // prompt length
TOP_K = 50  # candidates per sampling step, as transformers' generate uses by default


@dataclass(frozen=True)
class Decoded:
    """New tokens of one row (after the prompt, up to and including a stop token)."""

    tokens: list[int]
    stopped: bool


def supports(model: torch.nn.Module) -> bool:
    """True when ``model`` is a decoder this loop implements exactly."""
    config = model.config
    if config.model_type not in SUPPORTED:
        return False
    window = getattr(config, "sliding_window", None)
    return not window or getattr(config, "use_sliding_window", True) is False or window >= 32768


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """Batched generation with a Hugging Face Llama-family model's own modules."""

    def __init__(self, model: torch.nn.Module, cuda_graphs: bool = True) -> None:
        config = model.config
        self.model = model
        self.layers = list(model.model.layers)
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._captured: CapturedSteps | None = None

    # -- the model, one step ----------------------------------------------------------------

    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]],
        rows: slice,
        start: torch.Tensor | int,
        length: int,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Hidden state of the last position for ``ids`` [b, t] written at ``start``.

        Keys and values of the t positions go into ``cache`` rows ``rows`` at ``start``;
        attention reads the first ``length`` cache positions through ``mask``
        ([b, 1, t, length] booleans) or, when ``mask`` is None, causally.
        """
        inner = self.model.model
        hidden = inner.embed_tokens(ids)
        cos, sin = inner.rotary_emb(hidden, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        b, t = ids.shape
        index = (torch.arange(t, device=ids.device) + start) if t > 1 else start
        for layer, (k_cache, v_cache) in zip(self.layers, cache, strict=True):
            attn = layer.self_attn
            x = layer.input_layernorm(hidden)
            q = attn.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k_cache[rows].index_copy_(2, index.reshape(-1), k)
            v_cache[rows].index_copy_(2, index.reshape(-1), v)
            keys, values = k_cache[rows, :, :length], v_cache[rows, :, :length]
            groups = self.heads // self.kv_heads
            if groups > 1 and t == 1:
                # Grouped-query decoding: the query heads sharing a KV head become that
                # head's query rows, so the cache is read once and never copied per group.
                out = F.scaled_dot_product_attention(
                    q.view(b, self.kv_heads, groups, self.head_dim),
                    keys,
                    values,
                    attn_mask=mask,
                    scale=attn.scaling,
                ).view(b, self.heads, 1, self.head_dim)
            else:
                if groups > 1:
                    keys = keys.repeat_interleave(groups, dim=1)
                    values = values.repeat_interleave(groups, dim=1)
                # On an H200 SDPA beat an explicit matmul-softmax-matmul by 8-10% per step.
                out = F.scaled_dot_product_attention(
                    q, keys, values, attn_mask=mask, is_causal=mask is None, scale=attn.scaling
                )
            hidden = hidden + attn.o_proj(out.transpose(1, 2).reshape(b, t, -1))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return inner.norm(hidden[:, -1])

    def _logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(last_hidden).float()

    # -- generation ---------------------------------------------------------------------------

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
    ) -> list[Decoded]:
        """Continue every prompt by up to ``max_new_tokens`` tokens, all rows together.

        Sampling settings are one value for all rows or a list with one per row.
        """
        batch, width = len(prompts), max(len(p) for p in prompts)
        total = -(-(width + max_new_tokens) // BUCKET) * BUCKET
        device = self.device
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
        if self.cuda_graphs:
            step_fn = self._captured_steps(batch, total)
            cache, valid = step_fn.cache, step_fn.valid
            valid.fill_(True)
        else:
            cache = self._allocate(batch, total)
            valid = torch.ones(batch, total, dtype=torch.bool, device=device)
            step_fn = self._eager_steps(cache, valid)
        for row, prompt in enumerate(prompts):
            valid[row, : width - len(prompt)] = False
        positions = (valid[:, :width].long().cumsum(-1) - 1).clamp(min=0)

        # Prefill in slices of rows; padded rows need an explicit causal + padding mask.
        last = torch.empty(batch, self.model.config.hidden_size, dtype=self.dtype, device=device)
        step = max(1, PREFILL_TOKENS // width)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        for first in range(0, batch, step):
            rows = slice(first, min(first + step, batch))
            keys_valid = valid[rows, :width]
            mask = None
            if not bool(keys_valid.all()):
                mask = (causal[None] & keys_valid[:, None, :]).unsqueeze(1)
                # A pad query attends to nothing, which SDPA turns into NaN; let it see itself.
                mask = mask | torch.eye(width, dtype=torch.bool, device=device)[None, None]
            last[rows] = self._forward(ids[rows], positions[rows], cache, rows, 0, width, mask)
        logits = self._logits(last)

        sampler = Sampler(
            ids, valid[:, :width], logits.shape[-1], temperature, top_p, repetition_penalty, seed
        )
        return decode(
            sampler, logits, step_fn, positions[:, -1:] + 1, 1, width, max_new_tokens, stop_ids,
            pad_id,
        )  # fmt: skip

    def _allocate(self, batch: int, total: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (batch, self.kv_heads, total, self.head_dim)
        return [
            (
                torch.zeros(shape, dtype=self.dtype, device=self.device),
                torch.zeros(shape, dtype=self.dtype, device=self.device),
            )
            for _ in self.layers
        ]

    def _eager_steps(self, cache: list, valid: torch.Tensor):
        """One decode step: (tokens [b], positions [b, 1], cache index) -> logits [b, vocab]."""
        arange = torch.arange(valid.shape[1], device=self.device)

        def eager(token: torch.Tensor, position: torch.Tensor, index: int) -> torch.Tensor:
            length = min(-(-(index + 1) // BUCKET) * BUCKET, valid.shape[1])
            mask = (valid[:, :length] & (arange[:length] <= index))[:, None, None, :]
            at = torch.tensor([index], device=self.device)
            return self._step(token[:, None], position, at, mask, length, cache)

        return eager

    def _step(
        self,
        token: torch.Tensor,
        position: torch.Tensor,
        index: torch.Tensor,
        mask: torch.Tensor,
        length: int,
        cache: list,
    ) -> torch.Tensor:
        hidden = self._forward(token, position, cache, slice(None), index, length, mask)
        return self._logits(hidden)

    def _captured_steps(self, batch: int, total: int) -> CapturedSteps:
        """The captured steps (and their cache) of the last call when it had ``batch`` rows
        and a cache of at least ``total`` positions, else new ones."""
        if self._captured is None or not self._captured.fits(batch, total):
            self.release()  # the old graphs and cache go before the new ones are allocated
            cache = self._allocate(batch, total)
            valid = torch.ones(batch, total, dtype=torch.bool, device=self.device)
            positions = torch.zeros(batch, 1, dtype=torch.long, device=self.device)
            self._captured = CapturedSteps(
                lambda token, position, index, mask, length: self._step(
                    token, position, index, mask, length, cache
                ),
                cache, valid, (batch, 1), positions,
            )  # fmt: skip
        return self._captured

    def release(self) -> None:
        """Free the captured graphs and the cache kept for the next batch."""
        self._captured = None


class CapturedSteps:
    """A decode step captured as one CUDA graph per cache-length bucket.

    ``run(token, positions, index, mask, length)`` is the engine's step: each graph reads
    this object's static ``token``, ``positions`` and ``index`` and the engine's ``cache``,
    and leaves the logits in the tensor it was captured with; the mask comes from ``valid``
    (False at left pads) and the index. An engine keeps these (and their cache) for its next
    batch of as many rows whose cache fits (``fits``): a worker drafting batch after batch
    of one size captures each bucket once, whatever the lengths of its emails; positions a
    shorter batch does not fill hold the earlier batch's keys, masked.
    """

    def __init__(
        self,
        run: Callable[..., torch.Tensor],
        cache: object,
        valid: torch.Tensor,
        token_shape: tuple[int, ...],
        positions: torch.Tensor,
        warmups: int = 1,
    ) -> None:
        device = valid.device
        self.run, self.cache, self.valid, self.warmups = run, cache, valid, warmups
        self.token = torch.zeros(token_shape, dtype=torch.long, device=device)
        self.positions = torch.zeros_like(positions)
        self.index = torch.zeros(1, dtype=torch.long, device=device)
        self.arange = torch.arange(valid.shape[1], device=device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None  # the buckets' graphs never run at once, so they share memory

    def fits(self, rows: int, total: int, positions_shape: tuple[int, ...] | None = None) -> bool:
        """Whether a batch of ``rows`` rows needing ``total`` cache positions can use these."""
        same_positions = positions_shape is None or positions_shape == tuple(self.positions.shape)
        return self.valid.shape[0] == rows and self.valid.shape[1] >= total and same_positions

    def _run(self, length: int) -> torch.Tensor:
        mask = (self.valid[:, :length] & (self.arange[:length] <= self.index))[:, None, None, :]
        return self.run(self.token, self.positions, self.index, mask, length)

    def _capture(self, length: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up (and compile) off the capture
            for _ in range(self.warmups):
                self._run(length)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self._run(length)
        self.pool = graph.pool()
        return graph, logits

    def __call__(self, token: torch.Tensor, positions: torch.Tensor, index: int) -> torch.Tensor:
        self.token.copy_(token.view(self.token.shape))
        self.positions.copy_(positions)
        self.index.fill_(index)
        length = min(-(-(index + 1) // BUCKET) * BUCKET, self.valid.shape[1])
        if length not in self.graphs:
            # Capturing writes keys at ``index`` from the warm-up; the replay rewrites them.
            self.graphs[length] = self._capture(length)
        graph, logits = self.graphs[length]
        graph.replay()
        return logits


def _per_row(value: float | list[float], batch: int, device: torch.device) -> torch.Tensor:
    values = value if isinstance(value, list) else [value] * batch
    return torch.tensor(values, dtype=torch.float32, device=device)[:, None]


class Sampler:
    """Greedy or temperature/top-p sampling with HF's repetition penalty, row by row.

    Every setting may differ per row (a batch mixes drafts of different sampling rules); a
    row at temperature 0 is decoded greedily.
    """

    def __init__(
        self,
        ids: torch.Tensor,
        valid: torch.Tensor,
        vocab: int,
        temperature: float | list[float],
        top_p: float | list[float],
        penalty: float | list[float],
        seed: int | None,
    ) -> None:
        batch, device = ids.shape[0], ids.device
        self.temperature = _per_row(temperature, batch, device)
        self.top_p = _per_row(top_p, batch, device)
        self.penalty = _per_row(penalty, batch, device)
        self.greedy = bool((self.temperature <= 0).all())
        self.rows = torch.arange(batch, device=device)
        self.seen: torch.Tensor | None = None
        if bool((self.penalty != 1.0).any()):
            self.seen = torch.zeros(batch, vocab, dtype=torch.bool, device=device)
            rows, columns = valid.nonzero(as_tuple=True)
            self.seen[rows, ids[rows, columns]] = True
        self.generator = None
        if seed is not None and not self.greedy:
            self.generator = torch.Generator(device=device).manual_seed(seed)

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        if self.seen is not None:
            penalised = torch.where(logits < 0, logits * self.penalty, logits / self.penalty)
            logits = torch.where(self.seen, penalised, logits)
        token = logits.argmax(-1)
        if not self.greedy:
            # Like transformers' defaults: the TOP_K likeliest tokens, then the nucleus.
            top, candidates = (logits / self.temperature.clamp(min=1e-5)).topk(TOP_K, dim=-1)
            probs = torch.softmax(top, dim=-1)
            drop = probs.cumsum(-1) - probs > self.top_p
            probs = probs.masked_fill(drop, 0)
            choice = torch.multinomial(probs, 1, generator=self.generator)
            sampled = candidates.gather(1, choice).squeeze(1)
            token = torch.where(self.temperature[:, 0] > 0, sampled, token)
        if self.seen is not None:
            self.seen[self.rows, token] = True
        return token


def decode(
    sampler: Sampler,
    logits: torch.Tensor,
    step: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    positions: torch.Tensor,
    position_step: torch.Tensor | int,
    width: int,
    max_new_tokens: int,
    stop_ids: set[int],
    pad_id: int,
    on_logits: Callable[[int, torch.Tensor], None] | None = None,
) -> list[Decoded]:
    """The decode loop after a prefill that left ``logits`` [b, V] and filled the cache up
    to ``width``: pick a token per row, then ``step(tokens, positions, cache index)`` for the
    next logits, the positions advancing by ``position_step``, until every row has met a
    stop token (checked every 8 steps, a sync) or ``max_new_tokens``. A row that stopped
    gets ``pad_id`` after its stop token. ``on_logits(step, logits)`` sees each step's raw
    logits before sampling."""
    device = logits.device
    stops = torch.tensor(sorted(stop_ids) or [-1], device=device)
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=device)
    out = torch.full((logits.shape[0], max_new_tokens), pad_id, dtype=torch.long, device=device)
    for i in range(max_new_tokens):
        if on_logits is not None:
            on_logits(i, logits)
        token = sampler.pick(logits)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        out[:, i] = token
        done |= torch.isin(token, stops)
        if i == max_new_tokens - 1 or (i % 8 == 7 and bool(done.all())):
            break
        logits = step(token, positions, width + i)
        positions = positions + position_step
    return decoded_rows(out.tolist(), stop_ids)


def decoded_rows(tokens: list[list[int]], stop_ids: set[int]) -> list[Decoded]:
    """Each row's new tokens, cut after its first stop token."""
    rows = []
    for row in tokens:
        stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
        rows.append(Decoded(row if stop is None else row[: stop + 1], stop is not None))
    return rows
