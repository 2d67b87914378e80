"""Generation speed: one draft at a time versus batched, on the CPU and on a GPU.

``cpu``: the bundled model drafts emails from the quality set through the whole pipeline
(intent, analysis, reply) three ways: one at a time with transformers' ``generate``, one
at a time with the engine's static-cache decoder, and as one batch with the engine.

``gpu``: a decoder the size of ChatGLM-6B (28 layers, hidden 4096, 32 heads, a SwiGLU FFN
sized to 6.7B parameters, vocabulary 130,528) with random weights (speed does not depend
on their values) continues 600-token prompts by exactly 256 tokens, at batch 1, 16, 64
and the largest batch whose KV cache fits, with plain ``generate`` (dynamic cache) and
with the engine (static cache, CUDA graphs). ``--tiny`` runs the same code with a toy
configuration, to check the script on the CPU before spending GPU time.

    .venv/bin/python bench/generate.py cpu --emails 8
    .venv/bin/python bench/generate.py gpu --json results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def say(text: str) -> None:
    """Progress on stderr, at once."""
    print(text, file=sys.stderr, flush=True)


# -- CPU: the bundled model through the whole pipeline ----------------------------------------


def run_cpu(args: argparse.Namespace) -> dict:
    """Drafts per minute and new tokens per second, one at a time versus batched."""
    import torch

    from inference import bundled_model_path
    from inference.drafting import DraftSettings, EmailInput, draft_replies
    from inference.prompts import DEFAULT_PROMPTS
    from inference.transformers_backend import TransformersBackend

    if args.threads:
        torch.set_num_threads(args.threads)
    lines = (ROOT / "bench" / "quality_set.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in lines if line.strip()][: args.emails]
    emails = [
        EmailInput(i["subject"], i["sender_name"], i["sender_address"], i["body"]) for i in items
    ]
    settings = DraftSettings(
        "Acme Cloud", "Acme Cloud Support Team", max_new_tokens=args.max_new_tokens, seed=1
    )
    model = args.model or bundled_model_path()
    say(f"loading {model}")
    backend = TransformersBackend(model, device="cpu")  # loaded once for all three runs
    engine = backend.fast
    runs = [
        ("one at a time, transformers generate", None, 1),
        ("one at a time, engine", engine, 1),
        (f"batch of {len(emails)}, engine", engine, len(emails)),
    ]
    rows = []
    for label, decoder, size in runs:
        backend.fast = decoder  # None: transformers' generate
        started, tokens = time.monotonic(), 0
        for first in range(0, len(emails), size):
            outcomes = draft_replies(
                backend, emails[first : first + size], DEFAULT_PROMPTS, settings
            )
            tokens += sum(o.completion_tokens for o in outcomes)
            say(f"  {label}: {first + size}/{len(emails)} in {time.monotonic() - started:.0f} s")
        seconds = time.monotonic() - started
        rows.append(
            {
                "run": label,
                "drafts": len(emails),
                "seconds": round(seconds, 1),
                "drafts_per_minute": round(60 * len(emails) / seconds, 2),
                "new_tokens_per_s": round(tokens / seconds, 1),
            }
        )
        say(json.dumps(rows[-1]))
    return {"mode": "cpu", "model": model, "threads": torch.get_num_threads(), "rows": rows}


# -- GPU: a ChatGLM-6B-sized decoder ---------------------------------------------------------


def build_model(tiny: bool, device: str):
    """A Llama-architecture decoder with ChatGLM-6B's sizes (or a toy one), random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if tiny:
        sizes = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8,
                     intermediate_size=688, vocab_size=130_528)  # fmt: skip
    else:
        # 28 x (4 x 4096^2 attention + 3 x 4096 x 10,944 FFN) + 2 x 130,528 x 4096 = 6.71e9
        sizes = dict(hidden_size=4096, num_hidden_layers=28, num_attention_heads=32,
                     intermediate_size=10_944, vocab_size=130_528)  # fmt: skip
    config = LlamaConfig(
        **sizes, max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=1,
        eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its final dtype: no fp32 copy of 6.7e9 weights
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.eval()
    model.generation_config.eos_token_id = None  # exactly max_new_tokens every time
    return model


def run_gpu(args: argparse.Namespace) -> dict:
    """Drafts per second at several batch sizes, plain generate versus the engine."""
    import torch

    from inference.fastpath import StaticDecoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    say(f"building the model on {device}")
    started = time.monotonic()
    model = build_model(args.tiny, device)
    params = sum(p.numel() for p in model.parameters())
    say(f"{params / 1e9:.2f}e9 parameters in {time.monotonic() - started:.0f} s")
    config = model.config
    prompt_len, new = args.prompt_tokens, args.new_tokens
    gen = torch.Generator().manual_seed(0)

    def prompts(batch: int) -> list[list[int]]:
        return torch.randint(3, config.vocab_size, (batch, prompt_len), generator=gen).tolist()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def plain(batch: int) -> None:
        ids = torch.tensor(prompts(batch), device=device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                min_new_tokens=new, do_sample=False, pad_token_id=0,
            )  # fmt: skip
        assert out.shape[1] == prompt_len + new

    decoder = StaticDecoder(model)

    def engine(batch: int) -> None:
        rows = decoder.generate(prompts(batch), new, set(), pad_id=0)
        assert all(len(r.tokens) == new for r in rows)

    # The largest batch whose KV cache fits beside the weights, in steps of 16.
    total = -(-(prompt_len + new) // 64) * 64
    per_row = (
        config.num_hidden_layers * 2 * config.hidden_size * total * (2 if device == "cuda" else 4)
    )
    if device == "cuda":
        free = torch.cuda.mem_get_info()[0] - 6 * 2**30  # activations, graphs, logits
        largest = max(16, int(free // per_row) // 16 * 16)
    else:
        largest = 32
    batches = sorted({*args.batches, largest})
    say(f"KV cache {per_row / 2**20:.0f} MiB per row; largest batch {largest}")

    engine(2)  # CUDA context, cuBLAS handles, kernels: once, outside the figures
    results = []
    runs = (
        ("engine", engine, batches),
        ("generate", plain, batches),
    )
    for name, fn, sizes in runs:
        for batch in sizes:
            if name == "generate" and batch > args.generate_max:
                continue
            decoder.release()  # each figure includes its capture, and frees the GPU for generate
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            say(f"{name}, batch {batch} ...")
            started = time.monotonic()
            try:
                fn(batch)
                sync()
            except torch.OutOfMemoryError:
                say(f"{name}, batch {batch}: out of memory")
                results.append({"run": name, "batch": batch, "error": "out of memory"})
                continue
            seconds = time.monotonic() - started
            row = {
                "run": name,
                "batch": batch,
                "seconds": round(seconds, 2),
                "drafts_per_s": round(batch / seconds, 2),
                "new_tokens_per_s": round(batch * new / seconds),
            }
            if device == "cuda":
                row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
            results.append(row)
            say(json.dumps(row))
    info = {"mode": "gpu", "device": device, "parameters": params, "prompt_tokens": prompt_len}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    info.update(new_tokens=new, torch=torch.__version__, rows=results)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    cpu = sub.add_parser("cpu", help="the bundled model through the whole pipeline")
    cpu.add_argument("--emails", type=int, default=8)
    cpu.add_argument("--max-new-tokens", type=int, default=200)
    cpu.add_argument("--model", default=os.getenv("REPLYHUB_MODEL", ""))
    cpu.add_argument("--threads", type=int, default=0)
    gpu = sub.add_parser("gpu", help="a ChatGLM-6B-sized decoder, random weights")
    gpu.add_argument("--tiny", action="store_true", help="a toy model, to test the script")
    gpu.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")],
                     default=[1, 16, 64])  # fmt: skip
    gpu.add_argument("--generate-max", type=int, default=1024,
                     help="largest batch to try with plain generate")  # fmt: skip
    gpu.add_argument("--prompt-tokens", type=int, default=600)
    gpu.add_argument("--new-tokens", type=int, default=256)
    for p in (cpu, gpu):
        p.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    result = run_cpu(args) if args.mode == "cpu" else run_gpu(args)
    result.update(machine=f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs")
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
