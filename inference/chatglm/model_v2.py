"""ChatGLM2-6B and ChatGLM3-6B in plain PyTorch, numerically the original in fp32.

The module tree mirrors the checkpoint's key names (``transformer.encoder.layers.N.
self_attention.query_key_value.weight`` …) so weights load by name. Tensors are batch-first.

The architecture, as the original computes it:

- **RMSNorm** (variance in fp32, no bias) before attention and MLP; plain residuals
  (from the norm's output instead, if ``apply_residual_connection_post_layernorm``).
- **Multi-query attention**: ``query_key_value`` gives [Q (heads) | K (groups) | V (groups)];
  query head h reads key/value group h // (heads / groups) (repeat-interleave, not tiling).
  The KV cache holds only the groups.
- **Rotary on the first half of each head** (kv_channels / 2 dims), rotating interleaved
  pairs (x[2i], x[2i+1]) with θ_i = (10000·rope_ratio)^(-2i/(kv_channels/2)); the other half
  passes unchanged. The cos/sin table is built in fp32 and used in the model's dtype.
- **SwiGLU** MLP: ``dense_h_to_4h`` gives [a | b], the output is silu(a)·b.
- Attention is ``scaled_dot_product_attention`` with scale 1/√kv_channels, causal, plus key
  padding when rows are left-padded; a pad query sees every key, so it is never NaN.
- The output layer is its own matrix (untied), over the padded vocabulary.

In bf16/fp16 (``set_exact(False)``) the RMSNorms are one fused kernel each (the same
arithmetic up to the order of the mean's sum), which matters for a decode step of one
token per row: its time there is mostly the launch floor of each small kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.chatglm.config import ChatGLMConfig
from inference.chatglm.model_v1 import LinearFactory
from inference.chatglm.state import KVCache, PromptBatch


class RMSNorm(nn.Module):
    """x / rms(x) · weight, the mean of squares taken in fp32."""

    def __init__(self, size: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, dtype=dtype), requires_grad=False)
        self.eps = eps
        self.exact = True  # the original's operations; False: F.rms_norm (fp32 inside too)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.exact:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return (self.weight * (x * torch.rsqrt(variance + self.eps))).to(x.dtype)


def rope_table(head_dim: int, positions: int, rope_ratio: float = 1.0) -> torch.Tensor:
    """[positions, 2, head_dim] (cos, signed sin), fp32 on the CPU, for :func:`apply_rope`.

    The first half of each head is rotated in interleaved pairs: pair i by angle
    position · θ_i. Per pair the cos row holds (cos, cos) and the sin row (-sin, sin); the
    unrotated half has cos 1 and sin 0.
    """
    rotated = head_dim // 2
    base = 10000 * rope_ratio
    theta = 1.0 / (base ** (torch.arange(0, rotated, 2, dtype=torch.float, device="cpu") / rotated))
    angles = torch.outer(torch.arange(positions, dtype=torch.float, device="cpu"), theta).float()
    table = torch.zeros(positions, 2, head_dim, device="cpu")
    table[:, 0] = 1.0
    table[:, 0, 0:rotated:2] = table[:, 0, 1:rotated:2] = torch.cos(angles)
    table[:, 1, 0:rotated:2] = -torch.sin(angles)
    table[:, 1, 1:rotated:2] = torch.sin(angles)
    return table


def apply_rope(x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """``x`` [batch, heads, t, head_dim] rotated by ``rope`` [batch, 1, t, 2, head_dim]
    (:func:`rope_table`'s rows at each token's position).

    The original computes (even·cos - odd·sin, odd·cos + even·sin) per pair; this is
    x·cos + swap(x)·sin with the signs in the table, the same numbers (a negation is exact),
    and x·1 + swap(x)·0 = x on the unrotated half, in four kernels over the whole head.
    """
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return x * rope[..., 0, :] + swapped * rope[..., 1, :]


class SelfAttention(nn.Module):
    """Grouped (multi-query) attention with rotary on half of each head."""

    def __init__(
        self, config: ChatGLMConfig, layer: int, linear: LinearFactory, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.layer = layer
        self.heads, self.groups, self.head_dim = config.num_heads, config.kv_groups, config.head_dim
        width = (self.heads + 2 * self.groups) * self.head_dim
        self.query_key_value = linear(
            config.hidden_size, width, bias=config.qkv_bias or config.linear_bias, dtype=dtype
        )
        self.dense = linear(
            self.heads * self.head_dim, config.hidden_size, bias=config.linear_bias, dtype=dtype
        )

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        allowed: torch.Tensor | None,
        cache: KVCache | None,
        index: torch.Tensor | None,
        length: int,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        d, heads, groups = self.head_dim, self.heads, self.groups
        qk, v = self.query_key_value(x).split([(heads + groups) * d, groups * d], dim=-1)
        # q's and k's heads rotated together: the same arithmetic per element, half the kernels.
        qk = apply_rope(qk.view(b, t, heads + groups, d).transpose(1, 2), rope)
        q, k = qk.split([heads, groups], dim=1)
        v = v.view(b, t, groups, d).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer, k, v, index, length)
        share = heads // groups
        if t == 1 and share > 1:
            # One new token: the query heads sharing a group become that group's query
            # rows, so the cached keys are read once instead of copied per head.
            out = F.scaled_dot_product_attention(
                q.view(b, groups, share, d), k, v, attn_mask=allowed
            )
            out = out.view(b, heads, 1, d)
        else:
            if share > 1:
                k = k.repeat_interleave(share, dim=1)
                v = v.repeat_interleave(share, dim=1)
            causal = allowed is None and t == k.shape[2]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=causal)
        return self.dense(out.transpose(1, 2).reshape(b, t, heads * d))


class MLP(nn.Module):
    """SwiGLU: silu(a) · b for [a | b] = dense_h_to_4h(x), then dense_4h_to_h."""

    def __init__(self, config: ChatGLMConfig, linear: LinearFactory, dtype: torch.dtype) -> None:
        super().__init__()
        hidden, ffn, bias = config.hidden_size, config.ffn_size, config.linear_bias
        self.dense_h_to_4h = linear(hidden, 2 * ffn, bias=bias, dtype=dtype)
        self.dense_4h_to_h = linear(ffn, hidden, bias=bias, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(F.silu(a) * b)


class GLMBlock(nn.Module):
    """One layer: RMSNorm → attention → residual, RMSNorm → MLP → residual."""

    def __init__(
        self, config: ChatGLMConfig, layer: int, linear: LinearFactory, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.residual_from_norm = config.residual_from_norm
        self.input_layernorm = RMSNorm(config.hidden_size, config.eps, dtype)
        self.self_attention = SelfAttention(config, layer, linear, dtype)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.eps, dtype)
        self.mlp = MLP(config, linear, dtype)

    def forward(self, x: torch.Tensor, *attention_args: object) -> torch.Tensor:
        normed = self.input_layernorm(x)
        h = (normed if self.residual_from_norm else x) + self.self_attention(
            normed, *attention_args
        )
        normed = self.post_attention_layernorm(h)
        return (normed if self.residual_from_norm else h) + self.mlp(normed)


class Embedding(nn.Module):
    """The checkpoint's ``transformer.embedding`` (only ``word_embeddings`` inside)."""

    def __init__(self, config: ChatGLMConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, dtype=dtype)


class Encoder(nn.Module):
    """The checkpoint's ``transformer.encoder``: the blocks and the final RMSNorm."""

    def __init__(self, config: ChatGLMConfig, linear: LinearFactory, dtype: torch.dtype) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            GLMBlock(config, i, linear, dtype) for i in range(config.num_layers)
        )
        if config.post_layer_norm:
            self.final_layernorm = RMSNorm(config.hidden_size, config.eps, dtype)


class Transformer(nn.Module):
    """The checkpoint's ``transformer``: embedding, encoder and output layer."""

    def __init__(self, config: ChatGLMConfig, linear: LinearFactory, dtype: torch.dtype) -> None:
        super().__init__()
        self.embedding = Embedding(config, dtype)
        self.encoder = Encoder(config, linear, dtype)
        self.output_layer = nn.Linear(
            config.hidden_size, config.vocab_size, bias=False, dtype=dtype
        )


class ChatGLM2(nn.Module):
    """ChatGLM2/3-6B: hidden states, logits, and causal inputs for a batch of prompts."""

    def __init__(
        self,
        config: ChatGLMConfig,
        linear: LinearFactory = nn.Linear,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.config = config
        self.transformer = Transformer(config, linear, dtype)
        table = rope_table(config.head_dim, config.max_positions, config.rope_ratio)
        self.register_buffer("rope", table, persistent=False)

    @property
    def layers(self) -> nn.ModuleList:
        return self.transformer.encoder.layers

    def set_exact(self, exact: bool) -> None:
        """The original's RMSNorm operations (True) or one fused kernel each (False: the
        same up to the order of a sum, and faster). Attention is SDPA either way, as in
        the original."""
        for module in self.modules():
            if isinstance(module, RMSNorm):
                module.exact = exact

    def tie_head(self) -> None:
        """Use the embedding table as the output layer (only if a config asks for it)."""
        self.transformer.output_layer.weight = self.transformer.embedding.word_embeddings.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        allowed: torch.Tensor | None = None,
        cache: KVCache | None = None,
        index: torch.Tensor | None = None,
        length: int = 0,
    ) -> torch.Tensor:
        """Hidden states [batch, t, hidden] for ``input_ids`` [batch, t] at ``position_ids``.

        ``allowed`` [batch, 1, t, keys] says which keys each query sees; None means causal
        (or, for a single new token, every key). With a ``cache``, keys and values are
        written at cache positions ``index`` [t] and attention reads the first ``length``.
        """
        x = self.transformer.embedding.word_embeddings(input_ids)
        rope = self.rope[position_ids].unsqueeze(1).to(x.dtype)
        if allowed is not None:
            allowed = allowed | ~allowed.any(dim=-1, keepdim=True)  # pad rows see every key
        for layer in self.layers:
            x = layer(x, rope, allowed, cache, index, length)
        encoder = self.transformer.encoder
        return encoder.final_layernorm(x) if hasattr(encoder, "final_layernorm") else x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits for hidden states [..., hidden], over the padded vocabulary."""
        return self.transformer.output_layer(hidden)

    def prompt_batch(self, prompts: list[list[int]], pad_id: int) -> PromptBatch:
        """Left-padded ids and positions 0…n-1 of each unpadded prompt (0 at pads)."""
        width = max(len(p) for p in prompts)
        device = self.rope.device
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        valid = torch.zeros(len(prompts), width, dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            valid[row, width - len(prompt) :] = True
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        return PromptBatch(
            ids=ids.to(device),
            positions=positions.to(device),
            valid=valid.to(device),
            prefix_end=torch.zeros(len(prompts), dtype=torch.long, device=device),
            next_positions=positions[:, -1:].to(device) + 1,
            position_step=torch.tensor(1, device=device),
            causal_when_unpadded=True,
        )
