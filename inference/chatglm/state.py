"""What one generation holds: the prompts as tensors, and the KV cache.

The KV cache is allocated once for a whole generation and written in place. Every row of a
batch is left-padded to one width, so all rows write their next key and value at the same
cache index: one index tensor serves the batch, and a captured CUDA graph can replay the
same step with a new index. Nothing is concatenated or reallocated per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PromptBatch:
    """Left-padded prompts and what the model needs to run and continue them."""

    ids: torch.Tensor  # [batch, width]
    positions: torch.Tensor  # v1: [batch, 2, width] (position, block); v2/3: [batch, width]
    valid: torch.Tensor  # [batch, width], False at left pads
    prefix_end: torch.Tensor  # [batch]: keys before this index are seen by every query
    next_positions: torch.Tensor  # of the first new token: v1 [batch, 2, 1], v2/3 [batch, 1]
    position_step: torch.Tensor  # added to the positions for each further token
    causal_when_unpadded: bool  # v2/3: no mask at all (a causal kernel) without padding

    def mask(self, rows: slice = slice(None)) -> torch.Tensor | None:
        """[rows, 1, width, width], True where a query may attend a key, or None (causal).

        Causal, plus every key before ``prefix_end`` (v1's prompt before ``<sop>``); pads
        neither attend nor are attended. A pad row is left with no key at all: each model
        decides what such a row does (v1 attends uniformly, v2/3 sees every key).
        """
        valid, prefix_end = self.valid[rows], self.prefix_end[rows]
        if self.causal_when_unpadded and bool(valid.all()):
            return None
        width = valid.shape[1]
        index = torch.arange(width, device=valid.device)
        seen = (index[None, :] <= index[:, None])[None] | (
            index[None, None, :] < prefix_end[:, None, None]
        )
        return (seen & valid[:, None, :] & valid[:, :, None]).unsqueeze(1)


@dataclass
class KVCache:
    """Keys and values per layer, each [batch, kv_heads, length, head_dim]."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @classmethod
    def allocate(
        cls,
        layers: int,
        batch: int,
        kv_heads: int,
        length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> KVCache:
        """Zeroed buffers: a position read before it is written must hold finite numbers,
        because a masked-out key still meets a zero probability in ``probs @ values``."""
        shape = (batch, kv_heads, length, head_dim)
        return cls(
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)],
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)],
        )

    @property
    def length(self) -> int:
        """Positions each row can hold."""
        return self.keys[0].shape[2]

    def rows(self, rows: slice) -> KVCache:
        """A view of some batch rows; writes through it land in this cache."""
        return KVCache([k[rows] for k in self.keys], [v[rows] for v in self.values])

    def update(
        self,
        layer: int,
        key: torch.Tensor,
        value: torch.Tensor,
        index: torch.Tensor,
        length: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``key``/``value`` [batch, kv_heads, t, head_dim] at cache positions ``index``
        [t], and return the first ``length`` positions of the layer's keys and values."""
        keys, values = self.keys[layer], self.values[layer]
        keys.index_copy_(2, index, key)
        values.index_copy_(2, index, value)
        return keys[:, :, :length], values[:, :, :length]

    def copy_prefix(self, source_row: int, length: int) -> None:
        """Copy one row's first ``length`` positions into every row (a prompt shared by
        several continuations is computed once)."""
        for tensor in (*self.keys, *self.values):
            tensor[:, :, :length] = tensor[source_row : source_row + 1, :, :length]

    def nbytes(self) -> int:
        """Bytes held by all the buffers."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))
