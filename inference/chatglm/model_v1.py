"""ChatGLM-6B (v1) in plain PyTorch, numerically the original in fp32.

The module tree mirrors the checkpoint's key names (``transformer.layers.N.attention.
query_key_value.weight`` …) so weights load by name. Tensors are batch-first here
([batch, seq, hidden]); the original runs [seq, batch, hidden], which changes no number.

What makes v1 unusual, and is kept exactly:

- **2D rotary positions.** Each head is split in two halves. The first half is rotated by
  the token's position, the second by its *block* position. Positions count 0, 1, 2 … up to
  ``[gMASK]``; from ``<sop>`` on they stay at ``[gMASK]``'s index while block positions run
  1, 2, 3 … (0 before ``<sop>``). Each half uses rotate-half RoPE with
  inv_freq = 10000^(-2i/(head_dim/2)), rounded to fp16 as the original builds it.
- **Prefix-LM mask.** Every token sees the whole prompt before ``<sop>``; from ``<sop>`` on
  attention is causal. Left pads are masked as rows and columns.
- **Attention scaling.** Layer i divides q by √head_dim·(i+1), multiplies the scores back by
  (i+1) in fp32, and fills masked scores with -10000 (not -inf) before that multiply, so a
  fully masked pad row attends uniformly instead of producing NaN.
- **DeepNorm residuals from the layernorm output**: h = LN1(x)·α + Attn(LN1(x)),
  out = LN2(h)·α + MLP(LN2(h)), α = √(2·28). The original hard-codes 28 layers here, so α
  does not follow ``num_layers``.
- **MLP**: tanh-approximated GELU written out as the original writes it (``F.gelu`` with
  approximate="tanh" differs by up to 2.4e-7 per element).

In fp32 the model does the original's arithmetic. In bf16/fp16 (``set_exact(False)``) it
uses fused kernels instead: SDPA for attention, ``F.gelu`` and one-kernel residuals, which
matters for a decode step of one token per row: its time there is mostly the launch floor
of each small kernel, not arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from inference.chatglm.config import ChatGLMConfig
from inference.chatglm.state import KVCache, PromptBatch

ALPHA = (2 * 28) ** 0.5  # the original's GLMBlock default of 28 layers, never overridden
MASKED_SCORE = -10000.0

LinearFactory = Callable[..., nn.Module]


def gelu(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU, in the original's order of operations."""
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)))


def rotary_tables(head_dim: int, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [positions, head_dim / 2] (fp32, on the CPU) for one half of a head."""
    half = head_dim // 2
    # The original stores inv_freq in fp16 and computes from the rounded values.
    inv_freq = (1.0 / (10000 ** (torch.arange(0, half, 2, device="cpu").float() / half))).half()
    angles = torch.outer(
        torch.arange(positions, dtype=torch.float32, device="cpu"), inv_freq.float()
    )
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def _swap_quarters(x: torch.Tensor) -> torch.Tensor:
    """[a1 a2 b1 b2] → [a2 a1 b2 b1]: with the signs folded into the sin table
    (:meth:`ChatGLM1._rotary`), rotate-half applied to each half of the head at once."""
    a1, a2, b1, b2 = x.chunk(4, dim=-1)
    return torch.cat((a2, a1, b2, b1), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head attention with 2D rotary positions and v1's per-layer score scaling."""

    def __init__(
        self, config: ChatGLMConfig, layer: int, linear: LinearFactory, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.heads, self.head_dim, self.layer = config.num_heads, config.head_dim, layer
        hidden = config.hidden_size
        self.query_key_value = linear(hidden, 3 * hidden, bias=True, dtype=dtype)
        self.dense = linear(hidden, hidden, bias=True, dtype=dtype)
        self.exact = True  # the original's matmul-softmax-matmul; False: SDPA

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        allowed: torch.Tensor | None,
        cache: KVCache | None,
        index: torch.Tensor | None,
        length: int,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        # The fused projection is laid out per head as [q | k | v], not [Q | K | V]; q and
        # k are rotated together (the same arithmetic per element, half the kernels).
        d = self.head_dim
        qkv = self.query_key_value(x).view(b, t, self.heads, 3 * d).transpose(1, 2)
        qk = qkv[..., : 2 * d].unflatten(-1, (2, d))
        cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        qk = qk * cos + _swap_quarters(qk) * sin
        q, k, v = qk[..., 0, :], qk[..., 1, :], qkv[..., 2 * d :]
        if cache is not None:
            k, v = cache.update(self.layer, k, v, index, length)
        if self.exact:
            out = self._reference_attention(q, k, v, allowed)
        else:
            out = self._sdpa(q, k, v, allowed)
        return self.dense(out.transpose(1, 2).reshape(b, t, -1))

    def _reference_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None
    ) -> torch.Tensor:
        coeff = float(self.layer + 1)
        q = q / (math.sqrt(self.head_dim) * coeff)
        scores = torch.matmul(q, k.transpose(-1, -2))
        if allowed is not None:
            scores = scores.masked_fill(~allowed, MASKED_SCORE)
        probs = torch.softmax(scores.float() * coeff, dim=-1).to(v.dtype)
        return torch.matmul(probs, v)

    def _sdpa(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None
    ) -> torch.Tensor:
        # The same attention up to rounding: the (i+1) scaling cancels. ``allowed`` has no
        # fully masked row (see ChatGLM1.forward).
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, scale=1.0 / math.sqrt(self.head_dim)
        )


class MLP(nn.Module):
    """dense → GELU → dense (ungated)."""

    def __init__(self, config: ChatGLMConfig, linear: LinearFactory, dtype: torch.dtype) -> None:
        super().__init__()
        self.dense_h_to_4h = linear(config.hidden_size, config.ffn_size, bias=True, dtype=dtype)
        self.dense_4h_to_h = linear(config.ffn_size, config.hidden_size, bias=True, dtype=dtype)
        self.exact = True  # the original's GELU; False: one fused kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense_h_to_4h(x)
        return self.dense_4h_to_h(gelu(x) if self.exact else F.gelu(x, approximate="tanh"))


class GLMBlock(nn.Module):
    """One layer: LN → attention, DeepNorm residual, LN → MLP, DeepNorm residual."""

    def __init__(
        self, config: ChatGLMConfig, layer: int, linear: LinearFactory, dtype: torch.dtype
    ) -> None:
        super().__init__()
        hidden, eps = config.hidden_size, config.eps
        self.input_layernorm = nn.LayerNorm(hidden, eps=eps, dtype=dtype)
        self.attention = SelfAttention(config, layer, linear, dtype)
        self.post_attention_layernorm = nn.LayerNorm(hidden, eps=eps, dtype=dtype)
        self.mlp = MLP(config, linear, dtype)
        self.exact = True  # the original's residual arithmetic; False: one kernel each

    def forward(self, x: torch.Tensor, *attention_args: object) -> torch.Tensor:
        normed = self.input_layernorm(x)
        h = self._residual(normed, self.attention(normed, *attention_args))
        normed = self.post_attention_layernorm(h)
        return self._residual(normed, self.mlp(normed))

    def _residual(self, normed: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """normed · α + out."""
        return normed * ALPHA + out if self.exact else torch.add(out, normed, alpha=ALPHA)


class Transformer(nn.Module):
    """Embeddings, the GLM blocks and the final layernorm (the checkpoint's ``transformer``)."""

    def __init__(self, config: ChatGLMConfig, linear: LinearFactory, dtype: torch.dtype) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, dtype=dtype)
        self.layers = nn.ModuleList(
            GLMBlock(config, i, linear, dtype) for i in range(config.num_layers)
        )
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.eps, dtype=dtype)


class ChatGLM1(nn.Module):
    """ChatGLM-6B: hidden states, logits, and the prefix-LM inputs for a batch of prompts."""

    def __init__(
        self,
        config: ChatGLMConfig,
        linear: LinearFactory = nn.Linear,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.config = config
        self.transformer = Transformer(config, linear, dtype)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype)
        self.lm_head.weight = self.transformer.word_embeddings.weight
        cos, sin = rotary_tables(config.head_dim, config.max_positions)
        # Rotate-half's signs on the sin table, per half of the head: [-sin, sin].
        quarter = config.head_dim // 4
        signs = torch.ones(2 * quarter, device="cpu")
        signs[:quarter] = -1
        self.register_buffer("rotary_cos", cos, persistent=False)
        self.register_buffer("rotary_sin_signed", sin * signs, persistent=False)
        self.exact = True

    @property
    def layers(self) -> nn.ModuleList:
        return self.transformer.layers

    def set_exact(self, exact: bool) -> None:
        """The original's arithmetic (True) or fused kernels (False: SDPA, ``F.gelu``, one-kernel
        residuals; the same up to rounding, and faster)."""
        self.exact = exact
        for layer in self.layers:
            layer.exact = layer.attention.exact = layer.mlp.exact = exact

    def tie_head(self) -> None:
        """Use the embedding table as the output layer, as the original does."""
        self.lm_head.weight = self.transformer.word_embeddings.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        allowed: torch.Tensor | None = None,
        cache: KVCache | None = None,
        index: torch.Tensor | None = None,
        length: int = 0,
    ) -> torch.Tensor:
        """Final-layernorm hidden states [batch, t, hidden] for ``input_ids`` [batch, t].

        ``position_ids`` [batch, 2, t] (positions, block positions). ``allowed`` [batch, 1,
        t, keys] says which keys each query sees (None: all). With a ``cache``, the keys
        and values are written at cache positions ``index`` [t] and attention reads the
        first ``length`` cache positions.
        """
        x = self.transformer.word_embeddings(input_ids)
        cos, sin = self._rotary(position_ids, x.dtype)
        if allowed is not None and not self.exact:
            # A fully masked pad row would be NaN in SDPA (and NaN survives a zero
            # probability), so such a row sees every key; once here, not in every layer.
            allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
        for layer in self.layers:
            x = layer(x, cos, sin, allowed, cache, index, length)
        return self.transformer.final_layernorm(x)

    def _rotary(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        # [batch, 1, t, head_dim]: the first half by position, the second by block position.
        # The sin table carries rotate-half's signs: x·cos + swap(x)·(±sin), where
        # rotate-half would compute x·cos + (±swap(x))·sin; negation is exact, so the same.
        tables = []
        for table in (self.rotary_cos, self.rotary_sin_signed):
            halves = (
                F.embedding(position_ids[:, 0], table),
                F.embedding(position_ids[:, 1], table),
            )
            tables.append(torch.cat(halves, dim=-1).unsqueeze(1).to(dtype))
        return tables[0], tables[1]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits for hidden states [..., hidden]."""
        return self.lm_head(hidden)

    # -- inputs ---------------------------------------------------------------------------

    def prompt_batch(self, prompts: list[list[int]], pad_id: int) -> PromptBatch:
        """Left-padded ids, 2D positions and the prefix-LM boundary for ``prompts``.

        Each prompt must contain ``[gMASK]`` (or ``[MASK]``) and ``<sop>``, as the tokenizer
        appends them. Positions are those of the unpadded prompt, and pads get 0, as the
        original tokenizer pads them.
        """
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        positions = torch.zeros(len(prompts), 2, width, dtype=torch.long)
        valid = torch.zeros(len(prompts), width, dtype=torch.bool)
        prefix_end = torch.zeros(len(prompts), dtype=torch.long)
        following = torch.zeros(len(prompts), 2, 1, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            pad, n = width - len(prompt), len(prompt)
            context, mask_at = _context_and_mask(prompt, self.config)
            block = torch.clamp(torch.arange(n) - context + 1, min=0)
            ids[row, pad:] = torch.tensor(prompt)
            positions[row, 0, pad:] = torch.arange(n).masked_fill(block > 0, mask_at)
            positions[row, 1, pad:] = block
            valid[row, pad:] = True
            prefix_end[row] = pad + context
            following[row, :, 0] = torch.tensor([mask_at, n - context + 1])
        device = self.rotary_cos.device
        return PromptBatch(
            ids=ids.to(device),
            positions=positions.to(device),
            valid=valid.to(device),
            prefix_end=prefix_end.to(device),
            next_positions=following.to(device),
            position_step=torch.tensor([[0], [1]], device=device),
            causal_when_unpadded=False,
        )


def _context_and_mask(prompt: list[int], config: ChatGLMConfig) -> tuple[int, int]:
    """(index of <sop>, index of [gMASK] or else [MASK]) in an unpadded prompt."""
    if config.bos_id not in prompt:
        raise ValueError("a ChatGLM-6B prompt must contain <sop> (the tokenizer appends it)")
    mask_id = config.gmask_id if config.gmask_id in prompt else config.mask_id
    if mask_id not in prompt:
        raise ValueError("a ChatGLM-6B prompt must contain [gMASK] or [MASK]")
    return prompt.index(config.bos_id), prompt.index(mask_id)
