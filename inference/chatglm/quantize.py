"""Weight-only int8 for the Linear layers: half the weight memory of fp16/bf16.

Each output row of a weight gets its own scale, ``max|w_row| / 127``, and the row is stored
as round(w / scale) in int8 (symmetric, no zero point). Activations stay in the model's
dtype. Where PyTorch has an int8 weight matmul kernel for the device (the CPU's
``_weight_int8pack_mm``) it is used; elsewhere the weight is widened on the fly, which saves
memory but not time unless ``torch.compile`` fuses the widening into the matmul.

The embeddings and the output layer stay in the model's dtype: ChatGLM-6B ties its output
layer to the embedding table, and both are read row by row rather than multiplied whole.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

INT8_MAX = 127


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 weight, fp32 scale per row) for a [out, in] floating-point weight."""
    wide = weight.float()
    scale = wide.abs().amax(dim=1) / INT8_MAX
    # An all-zero row would divide by zero; any positive scale reproduces its zeros.
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    quantized = torch.round(wide / scale[:, None]).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return quantized, scale


class Int8Linear(nn.Module):
    """``nn.Linear`` with an int8 weight and one fp32 scale per output feature.

    The int8 weight is a buffer under the name ``weight``, so a checkpoint's
    ``….weight`` key lands here; :meth:`load_weight` quantizes it on arrival.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer(
            "weight", torch.empty(out_features, in_features, dtype=torch.int8, device=device)
        )
        self.register_buffer("scale", torch.empty(out_features, dtype=torch.float32, device=device))
        self.bias = (
            nn.Parameter(torch.empty(out_features, device=device, dtype=dtype), requires_grad=False)
            if bias
            else None
        )
        self.int8_kernel = False  # decided in load_weight, once the device is known

    def load_weight(self, weight: torch.Tensor) -> None:
        """Quantize a floating-point [out, in] weight (on its device) into this layer."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight {tuple(weight.shape)} does not fit {self}")
        self.weight, self.scale = quantize_rows(weight)
        # Probed here, not in forward: a probe inside a CUDA graph capture or a compiled
        # region would break it.
        self.int8_kernel = _has_int8_kernel(weight.device.type)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight as the matmul sees it, in ``dtype``."""
        return (self.weight.float() * self.scale[:, None]).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x @ dequantized(weight).T + bias, without a full-size copy where a kernel allows."""
        if self.int8_kernel and x.dtype == torch.float32:
            flat = x.reshape(-1, self.in_features)
            out = torch._weight_int8pack_mm(flat, self.weight, self.scale)
            out = out.view(*x.shape[:-1], self.out_features)
        elif x.dtype == torch.float16:
            # x @ int8ᵀ sums up to in_features products of |q| ≤ 127 and can pass fp16's
            # 65504 before the scale shrinks it; widen the weight with its scale instead.
            out = F.linear(x, self.weight.to(x.dtype) * self.scale[:, None].to(x.dtype))
        else:
            out = (F.linear(x, self.weight.to(x.dtype)) * self.scale).to(x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


@functools.cache
def _has_int8_kernel(device_type: str) -> bool:
    """Whether ``torch._weight_int8pack_mm`` runs on this kind of device (tried once)."""
    if not hasattr(torch, "_weight_int8pack_mm"):
        return False
    try:
        x = torch.ones(1, 32, device=device_type)
        w = torch.ones(8, 32, dtype=torch.int8, device=device_type)
        torch._weight_int8pack_mm(x, w, torch.ones(8, device=device_type))
    except (RuntimeError, NotImplementedError):
        return False
    return True


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``model.layers`` by an :class:`Int8Linear` of its
    weight, one at a time (each full-precision weight is freed as it is replaced, unless
    referenced elsewhere). Returns ``model``, changed in place."""
    for layer in model.layers:
        for module in list(layer.modules()):
            for name, child in list(module.named_children()):
                if type(child) is not nn.Linear:
                    continue
                quantized = Int8Linear(
                    child.in_features, child.out_features, bias=False, device="meta"
                )
                quantized.load_weight(child.weight.detach())
                quantized.bias = child.bias
                setattr(module, name, quantized)
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights (parameters and persistent buffers, tied tensors once; not
    tables computed at load such as rotary cos/sin). Works on the meta device."""
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        tensors = [*module._parameters.items(), *module._buffers.items()]
        for name, tensor in tensors:
            if tensor is None or id(tensor) in seen or name in module._non_persistent_buffers_set:
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total
