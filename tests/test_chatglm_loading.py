"""ChatGLM checkpoints as users have them: configs, shards, the v1 head, int8, real sizes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from inference.chatglm.config import is_chatglm_folder, parse_config, read_config
from inference.chatglm.generate import Generator
from inference.chatglm.loader import build_model, load_model
from inference.chatglm.quantize import Int8Linear, quantize_linears, weight_bytes
from inference.types import ModelLoadError
from tests.test_chatglm import GOLDEN, V1, V3, assert_close, forward_logits, fp32_model


def checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def write_shards(
    folder: Path, tensors: dict[str, torch.Tensor], shards: int, fmt: str, source: Path
) -> None:
    """The official layout: ``config.json``, numbered shards and an index naming them."""
    folder.mkdir()
    shutil.copy(source / "config.json", folder / "config.json")
    keys = sorted(tensors)
    weight_map = {}
    for number in range(shards):
        part = {k: tensors[k].contiguous() for k in keys[number::shards]}
        if fmt == "bin":
            name = f"pytorch_model-{number + 1:05d}-of-{shards:05d}.bin"
            torch.save(part, folder / name)
        else:
            name = f"model-{number + 1:05d}-of-{shards:05d}.safetensors"
            save_file(part, folder / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    index = "pytorch_model.bin.index.json" if fmt == "bin" else "model.safetensors.index.json"
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / index).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )


def prompt_logits(model, version: str) -> torch.Tensor:
    golden = GOLDEN[version]
    return forward_logits(model, golden.prompts("b4_padded"), golden.pad)


# -- configs ----------------------------------------------------------------------------------


def test_the_configs_say_which_chatglm_they_are():
    v1, v3 = read_config(V1), read_config(V3)
    assert (v1.version, v1.chat_format, v1.head_dim, v1.kv_groups) == (1, "chatglm", 16, 2)
    assert (v1.bos_id, v1.eos_id, v1.gmask_id, v1.vocab_size) == (130004, 130005, 130001, 130528)
    assert (v3.version, v3.chat_format, v3.head_dim, v3.kv_groups) == (2, "chatglm3", 8, 2)
    assert (v3.num_heads, v3.ffn_size, v3.vocab_size, v3.qkv_bias) == (4, 80, 65024, True)
    raw = json.loads((V3 / "config.json").read_text())
    assert parse_config({**raw, "_name_or_path": "THUDM/chatglm2-6b"}).chat_format == "chatglm2"


def test_only_folders_with_a_chatglm_config_are_chatglm(tmp_path):
    assert is_chatglm_folder(V1) and is_chatglm_folder(V3)
    assert not is_chatglm_folder(V3 / "config.json")  # a file, not a folder
    assert not is_chatglm_folder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert not is_chatglm_folder(tmp_path)
    (tmp_path / "config.json").write_text('{"architectures": ["ChatGLMForConditionalGeneration"]}')
    assert is_chatglm_folder(tmp_path)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"quantization_bit": 4}, "pre-quantized"),
        ({"pre_seq_len": 128}, "P-tuning"),
        ({"original_rope": False}, "original_rope"),
    ],
)
def test_variants_we_do_not_run_are_refused_with_the_reason(change, words):
    raw = json.loads((V3 / "config.json").read_text())
    with pytest.raises(ModelLoadError, match=words):
        parse_config({**raw, **change})


# -- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v3"])
@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_sharded_checkpoints_load_to_the_same_model(tmp_path, version, fmt):
    source = GOLDEN[version].folder
    write_shards(tmp_path / "model", checkpoint(source), 3, fmt, source)
    lines: list[str] = []
    model = load_model(tmp_path / "model", progress=lines.append)
    assert torch.equal(prompt_logits(model, version), prompt_logits(fp32_model(version), version))
    assert len(lines) == 3 and "3/3 files" in lines[-1]


def test_v1_with_the_official_lm_head_copy_ties_it_to_the_embeddings(tmp_path):
    tensors = checkpoint(V1)
    tensors["lm_head.weight"] = tensors["transformer.word_embeddings.weight"].clone()
    write_shards(tmp_path / "model", tensors, 2, "bin", V1)
    model = load_model(tmp_path / "model")
    assert model.lm_head.weight is model.transformer.word_embeddings.weight  # stored once
    assert torch.equal(prompt_logits(model, "v1"), prompt_logits(fp32_model("v1"), "v1"))


def test_v1_with_a_different_lm_head_uses_it(tmp_path):
    tensors = checkpoint(V1)
    tensors["lm_head.weight"] = -tensors["transformer.word_embeddings.weight"]
    write_shards(tmp_path / "model", tensors, 1, "safetensors", V1)
    model = load_model(tmp_path / "model")
    assert model.lm_head.weight is not model.transformer.word_embeddings.weight
    assert torch.equal(prompt_logits(model, "v1"), -prompt_logits(fp32_model("v1"), "v1"))


def test_a_checkpoint_missing_a_tensor_is_refused(tmp_path):
    tensors = checkpoint(V3)
    del tensors["transformer.encoder.layers.1.mlp.dense_4h_to_h.weight"]
    write_shards(tmp_path / "model", tensors, 2, "safetensors", V3)
    with pytest.raises(ModelLoadError, match=r"lacks transformer\.encoder\.layers\.1\.mlp"):
        load_model(tmp_path / "model")


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    tensors = checkpoint(V3)
    tensors["transformer.output_layer.weight"] = tensors["transformer.output_layer.weight"][:-1]
    write_shards(tmp_path / "model", tensors, 1, "safetensors", V3)
    with pytest.raises(ModelLoadError, match=r"output_layer\.weight has shape"):
        load_model(tmp_path / "model")


class Payload:
    """Stands for code a pickle could run on load."""


def test_a_bin_shard_that_would_unpickle_code_is_refused(tmp_path):
    tensors = checkpoint(V3)
    write_shards(tmp_path / "model", tensors, 2, "bin", V3)
    shard = next((tmp_path / "model").glob("*.bin"))
    torch.save({"payload": Payload()}, shard)
    with pytest.raises(ModelLoadError, match=re.escape(shard.name)):
        load_model(tmp_path / "model")


def test_a_folder_without_weights_says_what_it_looked_for(tmp_path):
    shutil.copy(V3 / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError, match=r"no model\.safetensors, pytorch_model\.bin"):
        load_model(tmp_path)


# -- int8 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_int8_is_the_model_with_its_weights_rounded_per_row(version):
    quantized = load_model(GOLDEN[version].folder, quantize="int8")
    linears = [m for m in quantized.modules() if isinstance(m, Int8Linear)]
    assert len(linears) == 4 * quantized.config.num_layers
    assert all(m.weight.dtype == torch.int8 for m in linears)
    # The same network with the dequantized weights in fp32 gives the same logits.
    rounded = load_model(GOLDEN[version].folder)
    for name, module in quantized.named_modules():
        if isinstance(module, Int8Linear):
            rounded.get_submodule(name).weight.copy_(module.dequantized())
    # Only rounding differs (int8 products, then the scale): measured 2.2e-4 (v1), 9.5e-5 (v3).
    ours, expected = prompt_logits(quantized, version), prompt_logits(rounded, version)
    assert_close(ours, expected, 5e-4)


def test_a_loaded_model_quantizes_to_the_same_int8_model():
    in_place = quantize_linears(load_model(V3))
    assert torch.equal(
        prompt_logits(in_place, "v3"), prompt_logits(load_model(V3, quantize="int8"), "v3")
    )


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_int8_logits_stay_near_fp32_and_greedy_output_is_sane(version):
    golden = GOLDEN[version]
    quantized = load_model(golden.folder, quantize="int8")
    ours, reference = prompt_logits(quantized, version), prompt_logits(fp32_model(version), version)
    valid = quantized.prompt_batch(golden.prompts("b4_padded"), golden.pad).valid
    error = (ours - reference).abs()[valid]
    # Measured mean |Δ| 0.18 (v1, logit std 6.2) and 0.039 (v3, std 1.26): about 3% of the
    # spread, and below what bf16 alone costs these random tiny models (0.23, 0.039).
    assert error.mean() < 0.05 * reference[valid].std()
    agree = (ours.argmax(-1) == reference.argmax(-1))[valid].float().mean()
    assert agree > 0.85  # measured 0.92 (v1), 0.91 (v3)
    rows = Generator(quantized).generate(golden.prompts("b4_padded"), 24, set(), golden.pad)
    for row, expected in zip(rows, golden.generated("b4_padded"), strict=True):
        assert row.tokens[:2] == expected[:2]  # measured: 2 to 24 tokens agree
        assert len(set(row.tokens)) >= 10  # not stuck repeating itself


def test_int8_halves_the_weights_of_the_real_sizes():
    sizes = {}
    for name in ("v1", "v3"):
        config = real_config(name)
        with torch.device("meta"):
            sizes[name] = [
                weight_bytes(build_model(config, torch.bfloat16, quantize))
                for quantize in ("", "int8")
            ]
    # bf16 → int8: 12.35 → 6.71 GB (v1), 12.49 → 6.78 GB (v3); embeddings stay bf16.
    assert sizes["v1"] == [12_346_572_800, 6_713_556_992]
    assert sizes["v3"] == [12_487_168_000, 6_781_124_608]


def real_config(version: str):
    """The official ChatGLM-6B / ChatGLM3-6B config (only the shapes differ from the tiny)."""
    raw = json.loads((GOLDEN[version].folder / "config.json").read_text())
    if version == "v1":
        raw.update(num_layers=28, hidden_size=4096, num_attention_heads=32, inner_hidden_size=16384)
    else:
        raw.update(
            num_layers=28, hidden_size=4096, num_attention_heads=32, kv_channels=128,
            ffn_hidden_size=13696,
        )  # fmt: skip
    return parse_config(raw)


def test_the_real_sizes_have_the_published_parameter_counts():
    counts = {}
    for name in ("v1", "v3"):
        with torch.device("meta"):
            model = build_model(real_config(name))
        counts[name] = sum(p.numel() for p in model.parameters())
    # ChatGLM-6B: 6.17e9 with its head tied; ChatGLM3-6B: 6.24e9 (its index's total_size
    # of 12,487,168,064 bytes is these in fp16 plus one 32-value fp16 inv_freq buffer).
    assert counts == {"v1": 6_173_286_400, "v3": 6_243_584_000}
