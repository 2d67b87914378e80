"""REPLYHUB_MODEL=/path/to/chatglm just works: the registry hands ChatGLM folders to the
native engine, which answers GenerationRequests and ChoiceRequests like any backend."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator

import pytest

from inference import registry
from inference.chatglm import chat
from inference.chatglm.backend import ChatGLMBackend
from inference.transformers_backend import TransformersBackend
from inference.types import (
    ChatMessage,
    ChoiceRequest,
    GenerationRequest,
    ModelLoadError,
    SamplingParams,
)
from tests.test_chatglm import GOLDEN, V1, V3, golden_tokenizer_data
from tests.test_chatglm_tokenizer import make_ice_text_model

HELLO = (ChatMessage("user", "你好"),)


def forget(backend: object) -> None:
    """Take a backend out of the registry's process-wide cache (other test files count it)."""
    for key in [k for k, loaded in registry._loaded.items() if loaded is backend]:
        del registry._loaded[key]


@pytest.fixture(scope="module")
def glm3() -> Iterator[ChatGLMBackend]:
    backend = registry.load_backend("transformers", str(V3), "cpu")
    yield backend
    forget(backend)


@pytest.fixture(scope="module")
def glm1(tmp_path_factory) -> Iterator[ChatGLMBackend]:
    folder = tmp_path_factory.mktemp("chatglm") / "chatglm-6b-tiny"
    shutil.copytree(V1, folder)
    make_ice_text_model(folder / "ice_text.model")
    backend = registry.load_backend("transformers", str(folder), "cpu")
    yield backend
    forget(backend)


def test_the_transformers_engine_hands_chatglm_folders_to_the_chatglm_engine(glm3):
    assert registry.engine_for("transformers", str(V3)) == "chatglm"
    assert registry.engine_for("openai", str(V3)) == "openai"  # a served model stays served
    assert registry.engine_for("transformers", "/nowhere/model.gguf") == "transformers"
    assert isinstance(glm3, ChatGLMBackend) and glm3.name == "chatglm"
    assert registry.load_backend("chatglm", str(V3), "cpu") is glm3  # loaded once


def test_the_transformers_backend_itself_points_to_the_chatglm_engine():
    with pytest.raises(ModelLoadError, match='"chatglm" engine'):
        TransformersBackend(str(V3), device="cpu")


def test_chatglm3_prompts_are_built_in_its_chat_format(glm3):
    expected = golden_tokenizer_data(V3)["chat_inputs"][0]
    assert expected["query"] == "你好"
    assert glm3._prompt(GenerationRequest(HELLO)) == expected["input_ids"]


def test_generation_results_carry_text_tokens_and_why_they_ended(glm3):
    requests = [
        GenerationRequest(HELLO, SamplingParams(max_new_tokens=6)),
        GenerationRequest(
            (ChatMessage("system", "Be brief."), ChatMessage("user", "Where is my order?")),
            SamplingParams(max_new_tokens=9, temperature=0.8, seed=5),
        ),
    ]
    results = glm3.generate(requests)
    assert [r.completion_tokens for r in results] == [6, 9]
    assert all(r.finish_reason == "length" for r in results)
    assert results[0].prompt_tokens == 8
    # The text is the greedy tokens decoded, as the engine's own generator writes them.
    rows = glm3.generator.generate([glm3._prompt(requests[0])], 6, glm3.stop_ids, 0)
    text = glm3.tokenizer.decode(rows[0].tokens, skip_special_tokens=True)
    assert results[0].text == chat.clean_reply(text, "chatglm3") != ""
    assert glm3.generate(requests[1:])[0].text == results[1].text  # seeded sampling repeats


def test_a_stop_token_ends_the_reply_and_is_not_in_its_text(glm3, monkeypatch):
    first = glm3.generator.generate([glm3._prompt(GenerationRequest(HELLO))], 1, set(), 0)
    monkeypatch.setattr(glm3, "stop_ids", {first[0].tokens[0]})
    result = glm3.generate([GenerationRequest(HELLO, SamplingParams(max_new_tokens=6))])[0]
    assert (result.finish_reason, result.completion_tokens, result.text) == ("stop", 1, "")


def test_chatglm3_also_stops_where_it_would_start_the_next_turn(glm3):
    assert glm3.stop_ids == {2, 64795, 64797}  # <eos>, <|user|>, <|observation|>


def test_choices_are_scored_after_the_assistants_metadata_line(glm3):
    request = ChoiceRequest(HELLO, ("inquiry", "complaint", "technical support"))
    result = glm3.score_choices([request])[0]
    prompt = [*glm3._prompt(request), 30910, 13]  # "\n": the empty metadata line
    choices = [glm3.tokenizer.encode(c) for c in request.choices]
    assert result.prompt_tokens == len(prompt)
    assert list(result.logprobs) == pytest.approx(glm3.generator.score(prompt, choices, 0))
    assert len(set(result.logprobs)) == 3 and max(result.logprobs) < 0


def test_chatglm_6b_drafts_and_scores_through_the_same_interface(glm1):
    assert glm1.config.chat_format == "chatglm"
    prompt = glm1._prompt(GenerationRequest(HELLO))
    assert prompt == [*glm1.tokenizer.encode("你好"), 130001, 130004]
    result = glm1.generate([GenerationRequest(HELLO, SamplingParams(max_new_tokens=5))])[0]
    assert (result.completion_tokens, result.finish_reason) == (5, "length")
    scores = glm1.score_choices([ChoiceRequest(HELLO, ("inquiry", "complaint"))])[0]
    assert len(scores.logprobs) == 2 and scores.prompt_tokens == len(prompt)
    assert glm1.stop_ids == {GOLDEN["v1"].eos}


def test_chatglm_6b_without_its_tokenizer_file_says_which_file(tmp_path):
    shutil.copytree(V1, tmp_path / "chatglm-6b")
    with pytest.raises(ModelLoadError, match=r"ice_text\.model"):
        ChatGLMBackend(str(tmp_path / "chatglm-6b"), device="cpu")


def test_replies_are_shortened_to_fit_the_models_positions(glm3, monkeypatch):
    monkeypatch.setattr(glm3, "config", dataclasses.replace(glm3.config, max_positions=12))
    result = glm3.generate([GenerationRequest(HELLO, SamplingParams(max_new_tokens=50))])[0]
    assert result.completion_tokens == 12 - 8
