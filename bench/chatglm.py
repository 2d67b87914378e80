"""ChatGLM generation speed on one GPU: the native engine against transformers' own models.

Builds real-size models with random weights directly on the GPU in bf16 (speed does not
depend on the values, and no checkpoint is needed):

- **v1**, ChatGLM-6B's shape: 28 layers, hidden 4096, 32 heads, FFN 16384, vocab 130528;
- **v3**, ChatGLM3-6B's shape: 28 layers, hidden 4096, 32 heads in 2 KV groups of 128,
  SwiGLU FFN 13696, vocab 65024.

Each continues 600-token prompts by exactly 256 tokens (no stop token) at batch 1, 16, 64
and the largest batch whose KV cache fits, and reports drafts (prompts) per second:

- ``eager``, ``graphs``, ``compile``: our engine, decode step eager, captured as CUDA graphs,
  or compiled with ``torch.compile`` and captured (graphs and compile report the steady
  state; their first call, with capture and compilation, is reported apart);
- ``int8``, ``int8-compile``: our engine with int8 weights in the blocks (CUDA graphs;
  compiled, which can fuse the widening of the weights into the matrix products);
- ``graphs-cudnn``, ``graphs-efficient``, ``graphs-math``: CUDA graphs with torch's
  attention held to one SDPA kernel (``graphs`` lets torch choose: cuDNN's on an H200);
- ``hf``: transformers' ``generate`` (dynamic cache, SDPA) on transformers' own model of the
  same shape: ``GlmForCausalLM`` for v3 (the same architecture: GLM-4 is ChatGLM3's), and
  ``GPTNeoXForCausalLM`` for v1, which has no transformers class: the same sizes, fused
  QKV with bias, LayerNorm, a GELU MLP, rotary, sequential residuals, tied head.
  ``hf-static`` (not run unless asked) adds a static cache and ``torch.compile``.

``profile`` (not run unless asked; bf16, at the batches given, not the largest) says where a
decode step's time goes: the step as a CUDA graph, timed, beside the kernels of the same
step run eagerly under ``torch.profiler``, summed per kind (matrix products, attention, the
rest) with the costliest kernels by name. Step time well above the kernels' sum is launch
overhead and gaps; kernels well above the memory floor are slow kernels.

It also prints the weight memory of both real shapes in fp32/bf16/int8, computed on the
meta device (nothing allocated), the KV cache per token, and the ATen operations in one
bf16 decode step at the real depth (counted on the CPU: each is a GPU kernel, and their
launch floor is most of a small batch's step time even inside a CUDA graph).

    .venv/bin/python bench/chatglm.py --tiny                 # CPU, under a minute
    .venv/bin/python bench/chatglm.py --versions v3 --json v3.json
    .venv/bin/python bench/chatglm.py --versions v1 --runs eager,graphs,int8,hf
    .venv/bin/python bench/chatglm.py --versions v3 --runs compile --max-batch 512

A run that fails (out of memory, or any error) is reported as a row with the error, and
the other runs go on. Engine runs go in the order given, the int8 ones last (they change
the model).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Our engine's runs: the Generator options of each (the int8 ones quantize the model first).
ENGINE_MODES = {
    "eager": dict(cuda_graphs=False),
    "graphs": dict(cuda_graphs=True),
    "compile": dict(cuda_graphs=True, compile=True),
    "int8": dict(cuda_graphs=True),
    "int8-compile": dict(cuda_graphs=True, compile=True),
    # CUDA graphs with torch's SDPA held to one kernel (default: torch picks per call).
    "graphs-cudnn": dict(cuda_graphs=True, attention="cudnn"),
    "graphs-efficient": dict(cuda_graphs=True, attention="efficient"),
    "graphs-math": dict(cuda_graphs=True, attention="math"),
}
RUNS = (*ENGINE_MODES, "hf", "hf-static", "profile")
DEFAULT_RUNS = "graphs,compile,eager,int8,int8-compile,hf"

# The official config.json keys that set the shapes (everything else as in the checkpoints).
SHAPES = {
    "v1": {
        "model_type": "chatglm", "vocab_size": 130528, "hidden_size": 4096,
        "num_attention_heads": 32, "num_layers": 28, "inner_hidden_size": 16384,
        "position_encoding_2d": True, "max_sequence_length": 2048, "bos_token_id": 130004,
        "eos_token_id": 130005, "mask_token_id": 130000, "gmask_token_id": 130001,
        "pad_token_id": 3, "layernorm_epsilon": 1e-5,
    },
    "v3": {
        "model_type": "chatglm", "_name_or_path": "THUDM/chatglm3-6b", "padded_vocab_size": 65024,
        "hidden_size": 4096, "num_attention_heads": 32, "num_layers": 28, "kv_channels": 128,
        "multi_query_attention": True, "multi_query_group_num": 2, "ffn_hidden_size": 13696,
        "seq_length": 8192, "add_qkv_bias": True, "add_bias_linear": False, "rmsnorm": True,
        "original_rope": True, "post_layer_norm": True, "layernorm_epsilon": 1e-5,
        "eos_token_id": 2, "pad_token_id": 0,
    },
}  # fmt: skip
TINY = {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 4}
TINY_SIZES = {"v1": {"inner_hidden_size": 256}, "v3": {"kv_channels": 16, "ffn_hidden_size": 160}}
# Prompt ids: v1 prompts end with [gMASK] <sop>; v3 prompts start with [gMASK] sop.
SPECIALS = {"v1": ([], [130001, 130004]), "v3": ([64790, 64792], [])}


def say(text: str) -> None:
    """Progress on stderr, at once."""
    print(text, file=sys.stderr, flush=True)


def config_for(version: str, tiny: bool, full_depth: bool = False):
    """The real shape of ``version``, or a toy one (``tiny``), of the real depth if asked."""
    from inference.chatglm.config import parse_config

    raw = dict(SHAPES[version])
    if tiny:
        raw.update(TINY, **TINY_SIZES[version])
    if full_depth:
        raw["num_layers"] = SHAPES[version]["num_layers"]
    return parse_config(raw)


# -- memory, computed -----------------------------------------------------------------------


def memory_table(positions: int) -> list[dict]:
    """Weight bytes of the real shapes per dtype, and KV cache per token and per draft of
    ``positions`` cache positions (computed; nothing is allocated)."""
    import torch

    from inference.chatglm.loader import build_model
    from inference.chatglm.quantize import weight_bytes

    rows = []
    for version in ("v1", "v3"):
        config = config_for(version, tiny=False)
        row = {"model": version}
        for label, dtype, quantize in (
            ("fp32", torch.float32, ""),
            ("bf16", torch.bfloat16, ""),
            ("int8", torch.bfloat16, "int8"),
        ):
            with torch.device("meta"):
                row[f"{label}_gb"] = round(
                    weight_bytes(build_model(config, dtype, quantize)) / 1e9, 2
                )
        row["kv_kib_per_token"] = config.kv_bytes_per_token / 1024
        row["kv_mib_per_draft"] = round(config.kv_bytes_per_token * positions / 2**20, 1)
        row["decode_ops"] = decode_ops(version)
        rows.append(row)
    return rows


# -- operations per decode step, counted ----------------------------------------------------

# What PyTorch dispatches without a kernel of its own (views, reshapes) is not counted.
VIEW_OPS = (
    "alias", "as_strided", "chunk", "detach", "expand", "flatten", "permute", "reshape",
    "select", "slice", "split", "split_with_sizes", "squeeze", "t", "transpose", "unflatten",
    "unsqueeze", "view", "_reshape_alias", "_unsafe_view", "lift_fresh",
)  # fmt: skip


def decode_ops(version: str) -> int:
    """ATen operations (kernels, roughly) in one bf16 decode step of ``version``'s depth, at
    a toy width on the CPU: on a GPU each is a kernel, whose launch floor of a few
    microseconds inside a CUDA graph is most of a small batch's step time."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from inference.chatglm.generate import Generator
    from inference.chatglm.state import KVCache

    class Count(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func._schema.name.removeprefix("aten::") not in VIEW_OPS:
                self.count += 1
            return func(*args, **(kwargs or {}))

    config = config_for(version, tiny=True, full_depth=True)
    model = engine_model(config, "cpu", torch.bfloat16)
    rows, length = 2, 64
    cache = KVCache.allocate(
        config.num_layers, rows, config.kv_groups, length, config.head_dim, torch.bfloat16, "cpu"
    )  # fmt: skip
    before, after = SPECIALS[version]
    prompt = before + list(range(5, 13)) + after
    positions = model.prompt_batch([prompt] * rows, 0).next_positions
    allowed = torch.ones(rows, 1, 1, length, dtype=torch.bool)
    token = torch.zeros(rows, dtype=torch.long)
    with torch.inference_mode(), Count() as counter:
        Generator(model, cuda_graphs=False)._decode_step(
            token, positions, torch.tensor([8]), allowed, cache, length
        )
    return counter.count


# -- models --------------------------------------------------------------------------------


def engine_model(config, device: str, dtype):
    """Our model of ``config``'s shape with random weights, built where it will run."""
    import torch

    from inference.chatglm.loader import build_model

    with torch.device(device):
        model = build_model(config, dtype)  # nn.Linear/Embedding initialise themselves
    return model.to(device)  # the rotary tables, built on the CPU


def hf_model(version: str, tiny: bool, device: str, dtype):
    """transformers' own model of the same shape (see the module docstring)."""
    import torch

    config = config_for(version, tiny)
    common = dict(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        pad_token_id=0, eos_token_id=None, bos_token_id=None,
    )  # fmt: skip
    if version == "v3":
        from transformers import GlmConfig, GlmForCausalLM

        hf_config = GlmConfig(
            **common, intermediate_size=config.ffn_size, num_key_value_heads=config.kv_groups,
            head_dim=config.head_dim, attention_bias=True, rms_norm_eps=config.eps,
            max_position_embeddings=config.max_positions, tie_word_embeddings=False,
        )  # fmt: skip
        model_class = GlmForCausalLM
    else:
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

        hf_config = GPTNeoXConfig(
            **common, intermediate_size=config.ffn_size, hidden_act="gelu_new",
            rotary_pct=1.0, use_parallel_residual=False, tie_word_embeddings=True,
            max_position_embeddings=config.max_positions, layer_norm_eps=config.eps,
        )  # fmt: skip
        model_class = GPTNeoXForCausalLM
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its final dtype: no fp32 copy of 6e9 weights
    try:
        with torch.device(device):
            model = model_class(hf_config)
    finally:
        torch.set_default_dtype(default)
    model.eval()
    model.generation_config.eos_token_id = None  # exactly max_new_tokens every time
    return model


# -- runs ------------------------------------------------------------------------------------


class Bench:
    """Timed generations of one model version; rows for the table."""

    def __init__(self, args: argparse.Namespace, version: str, device: str) -> None:
        import torch

        self.args, self.version, self.device = args, version, device
        self.dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.config = config_for(version, args.tiny)
        self.rows: list[dict] = []
        self.generator = torch.Generator().manual_seed(0)

    def prompts(self, batch: int) -> list[list[int]]:
        import torch

        before, after = SPECIALS[self.version]
        length = self.args.prompt_tokens - len(before) - len(after)
        text = torch.randint(5, 60000, (batch, length), generator=self.generator).tolist()
        return [before + row + after for row in text]

    def sync(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    def largest_batch(self, factor: float = 1.0) -> int:
        """Rows whose KV cache (and logits) fit in what is free now, in steps of 16."""
        import torch

        total = -(-(self.args.prompt_tokens + self.args.new_tokens) // 64) * 64
        per_row = self.config.kv_bytes_per_token * total + 4 * 4 * self.config.vocab_size
        if self.device != "cuda":
            return self.args.tiny_largest
        free = torch.cuda.mem_get_info()[0] - 6 * 2**30  # prefill activations, graphs
        largest = max(16, int(free * factor // per_row) // 16 * 16)
        say(f"{self.version}: {largest} rows fit in {free / 2**30:.0f} GiB free")
        return min(largest, self.args.max_batch) if self.args.max_batch else largest

    def measure(self, run: str, batch: int, generate, cold: bool = False) -> None:
        """Time ``generate(prompts)``; with ``cold``, once for capture/compilation first."""
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        prompts = self.prompts(batch)
        row: dict = {"model": self.version, "run": run, "batch": batch}
        say(f"{self.version} {run}, batch {batch} ...")
        try:
            if cold:
                started = time.monotonic()
                generate(prompts)
                self.sync()
                row["first_call_s"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            generate(prompts)
            self.sync()
        except torch.OutOfMemoryError:
            row["error"] = "out of memory"
        except Exception as error:  # recorded, and the other runs go on
            row["error"] = f"{type(error).__name__}: {error}"[:300]
        if "error" in row:
            self.rows.append(row)
            say(json.dumps(row))
            return
        seconds = time.monotonic() - started
        row.update(
            seconds=round(seconds, 2),
            drafts_per_s=round(batch / seconds, 2),
            new_tokens_per_s=round(batch * self.args.new_tokens / seconds),
        )
        if self.device == "cuda":
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        self.rows.append(row)
        say(json.dumps(row))

    def engine_runs(self, runs: list[str]) -> None:
        """Our engine: the bf16 runs in the order asked for, then the int8 ones (the model
        quantized in place)."""
        import torch

        from inference.chatglm.generate import Generator
        from inference.chatglm.quantize import quantize_linears, weight_bytes

        model = engine_model(self.config, self.device, self.dtype)
        say(f"{self.version}: {weight_bytes(model) / 1e9:.2f} GB of weights")
        new = self.args.new_tokens
        batches = sorted({*self.args.batches, self.largest_batch()})
        Generator(model).generate(self.prompts(2), 8, set(), 0)  # CUDA context, cuBLAS
        quantized = False
        for run in [r for r in runs if r in ENGINE_MODES or r == "profile"]:
            if run == "profile":
                for batch in self.args.batches:
                    self.profile(model, batch)
                continue
            if run.startswith("int8") and not quantized:
                quantize_linears(model)
                quantized = True
                gc.collect()
                if self.device == "cuda":
                    torch.cuda.empty_cache()
                say(f"{self.version} int8: {weight_bytes(model) / 1e9:.2f} GB of weights")
                batches = sorted({*self.args.batches, self.largest_batch()})
            options = ENGINE_MODES[run]
            if options.get("compile") and self.device != "cuda":
                continue  # minutes of compiling for a check of the script; the CPU has no graphs
            generator = Generator(model, **options)
            for batch in batches:
                self.measure(
                    run,
                    batch,
                    lambda p, g=generator: g.generate(p, new, set(), 0),
                    cold=options["cuda_graphs"] and not self.args.once,
                )
            del generator

    def profile(self, model, batch: int, steps: int = 8) -> None:
        """Time ``steps`` decode steps as CUDA graphs, then profile the same steps eagerly;
        one row with the step time and the kernel time per step, by kind and by kernel."""
        import torch
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity

        from inference.chatglm.generate import Generator

        prompts, cuda = self.prompts(batch), self.device == "cuda"
        row: dict = {"model": self.version, "run": "profile", "batch": batch}
        say(f"{self.version} profile, batch {batch} ...")
        # Steps 2 .. 2 + steps stay in the first cache bucket: no capture while timed.
        first, last = 2, 2 + steps
        try:
            started: list[float] = []

            def timed(i: int, logits: torch.Tensor) -> None:
                if i in (first, last):
                    self.sync()
                    started.append(time.monotonic())

            graphed = Generator(model, cuda_graphs=True)
            graphed.generate(prompts, last + 1, set(), 0, on_logits=timed)
            row["step_ms"] = round((started[1] - started[0]) * 1000 / steps, 2)

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            profiler = torch.profiler.profile(activities=activities)

            def profiled(i: int, logits: torch.Tensor) -> None:
                if i in (first, last):
                    self.sync()
                    (profiler.start if i == first else profiler.stop)()

            Generator(model, cuda_graphs=False).generate(
                prompts, last + 1, set(), 0, on_logits=profiled
            )
        except Exception as error:  # recorded, and the other runs go on
            row["error"] = f"{type(error).__name__}: {error}"[:300]
            self.rows.append(row)
            say(json.dumps(row))
            return
        kind = DeviceType.CUDA if cuda else DeviceType.CPU
        kernels: dict[str, list[float]] = {}  # name: [µs, calls]
        for event in profiler.events():
            # On the GPU each kernel; on the CPU each operation called from Python.
            if event.device_type != kind or (not cuda and event.cpu_parent is not None):
                continue
            micros = event.time_range.elapsed_us() if cuda else event.cpu_time_total
            entry = kernels.setdefault(event.name, [0.0, 0.0])
            entry[0] += micros / steps
            entry[1] += 1 / steps
        by_kind: dict[str, float] = {}
        for name, (micros, _) in kernels.items():
            by_kind[kernel_kind(name)] = by_kind.get(kernel_kind(name), 0.0) + micros
        row["kernel_ms"] = round(sum(by_kind.values()) / 1000, 2)
        row["kernels_per_step"] = round(sum(calls for _, calls in kernels.values()))
        row["by_kind_ms"] = {k: round(v / 1000, 2) for k, v in sorted(by_kind.items())}
        top = sorted(kernels.items(), key=lambda item: -item[1][0])[:8]
        row["top"] = [
            [name[:90], round(micros / 1000, 3), round(calls)] for name, (micros, calls) in top
        ]
        self.rows.append(row)
        say(json.dumps(row))

    def hf_runs(self, runs: list[str]) -> None:
        """transformers' generate on its own model of the same shape."""
        import torch

        model = hf_model(self.version, self.args.tiny, self.device, self.dtype)
        new = self.args.new_tokens

        def plain(prompts: list[list[int]], **options: object) -> None:
            ids = torch.tensor(prompts, device=self.device)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                    min_new_tokens=new, do_sample=False, pad_token_id=0, **options,
                )  # fmt: skip
            assert out.shape[1] == ids.shape[1] + new

        plain([p[:16] for p in self.prompts(2)])  # warm-up
        # Its dynamic cache grows by concatenation: about twice ours at the peak.
        batches = sorted({*self.args.batches, self.largest_batch(factor=0.5)})
        if "hf" in runs:
            for batch in batches:
                self.measure("hf", batch, plain)
        if "hf-static" in runs and self.device == "cuda":
            model.forward = torch.compile(model.forward, mode="reduce-overhead")
            for batch in batches:
                self.measure(
                    "hf-static", batch, lambda p: plain(p, cache_implementation="static"), cold=True
                )


def kernel_kind(name: str) -> str:
    """A kernel's (or, on the CPU, an operation's) kind, from its name."""
    lowered = name.lower()
    if any(k in lowered for k in ("fmha", "flash", "attention", "attn")):
        return "attention"
    if any(
        k in lowered for k in ("gemm", "gemv", "cutlass", "xmma", "nvjet", "mm", "linear", "matmul")
    ):
        return "matmul"
    return "other"


def table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| model | run | batch | drafts/s | new tokens/s | s | first call s | peak GiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['run']} | {r['batch']} | {r['error']} | | | | |")
            continue
        if r["run"] == "profile":
            continue
        lines.append(
            f"| {r['model']} | {r['run']} | {r['batch']} | {r['drafts_per_s']} | "
            f"{r['new_tokens_per_s']} | {r['seconds']} | {r.get('first_call_s', '')} | "
            f"{r.get('peak_gib', '')} |"
        )
    return "\n".join(lines)


def profile_markdown(rows: list[dict]) -> str:
    """The profile rows: a decode step's time, and its kernels' by kind and by name."""
    kinds = ("matmul", "attention", "other")
    lines = [
        "| model | batch | step ms (graph) | kernel ms | kernels | "
        + " | ".join(f"{k} ms" for k in kinds) + " | costliest kernels (ms, calls per step) |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(kinds) + "---|",
    ]  # fmt: skip
    for r in rows:
        if r["run"] != "profile" or "error" in r:
            continue
        top = "; ".join(f"{name} ({ms}, {calls})" for name, ms, calls in r["top"][:4])
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['step_ms']} | {r['kernel_ms']} | "
            f"{r['kernels_per_step']} | "
            + " | ".join(str(r["by_kind_ms"].get(k, 0)) for k in kinds) + f" | {top} |"
        )  # fmt: skip
    return "\n".join(lines)


def memory_markdown(rows: list[dict], positions: int) -> str:
    """The weight and KV-cache sizes as a Markdown table."""
    lines = [
        "| model | fp32 GB | bf16 GB | int8 GB | KV KiB/token (bf16) "
        f"| KV MiB per draft ({positions} positions) | ops per decode step |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['fp32_gb']} | {r['bf16_gb']} | {r['int8_gb']} | "
            f"{r['kv_kib_per_token']} | {r['kv_mib_per_draft']} | {r['decode_ops']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--tiny", action="store_true", help="toy shapes on the CPU, to test the script")
    add("--versions", default="v1,v3", help="v1 (ChatGLM-6B), v3 (ChatGLM3-6B) or both")
    add("--runs", default=DEFAULT_RUNS, help=f"comma-separated, of {', '.join(RUNS)}")
    add("--batches", default="1,16,64", help="besides the largest batch that fits")
    add("--max-batch", type=int, default=0, help="cap the largest batch (0: what fits)")
    add("--prompt-tokens", type=int, default=600)
    add("--new-tokens", type=int, default=256)
    add("--json", help="also write the results to this file")
    add(
        "--once",
        action="store_true",
        help="time the first call, graph capture included (where a second costs minutes)",
    )
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    runs = [r for r in args.runs.split(",") if r]
    unknown = set(runs) - set(RUNS)
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")

    import torch

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.tiny:
        args.prompt_tokens, args.new_tokens = min(args.prompt_tokens, 48), min(args.new_tokens, 16)
        args.batches, args.tiny_largest = [1, 4], 8
    elif device != "cuda":
        parser.error("no GPU: run with --tiny to check the script on the CPU")
    positions = -(-(args.prompt_tokens + args.new_tokens) // 64) * 64
    memory = memory_table(positions)
    say(memory_markdown(memory, positions))
    rows: list[dict] = []
    for version in args.versions.split(","):
        bench = Bench(args, version, device)
        if {*ENGINE_MODES, "profile"} & set(runs):
            bench.engine_runs(sorted(runs, key=lambda r: r.startswith("int8")))
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
        if {"hf", "hf-static"} & set(runs):
            bench.hf_runs(runs)
        rows += bench.rows
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "memory": memory,
        "rows": rows,
    }
    print(f"{info['device']}, torch {info['torch']}, {args.prompt_tokens}-token prompts, "
          f"{args.new_tokens} new tokens\n")  # fmt: skip
    print(memory_markdown(memory, positions) + "\n")
    print(table(rows))
    if any(r["run"] == "profile" for r in rows):
        print("\n" + profile_markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
