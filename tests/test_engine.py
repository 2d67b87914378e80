"""The transformers engine with the real bundled model: batching, decoding, choices."""

from __future__ import annotations

import logging

import pytest
import torch

from inference import bundled_model_path
from inference.fastpath import StaticDecoder
from inference.registry import load_backend
from inference.types import ChatMessage, ChoiceRequest, GenerationRequest, SamplingParams

QUESTIONS = [
    "What is the capital of France? Answer briefly.",
    "Write one sentence about email support teams and their long days.",
    "Hi",
]


@pytest.fixture(scope="module")
def backend():
    return load_backend("transformers", bundled_model_path(), "cpu")


def chat(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage("user", text),)


def hf_greedy(backend, prompts: list[list[int]], new: int, penalty: float = 1.0) -> list[list[int]]:
    """transformers' own generate on the same left-padded batch, cut after the stop token."""
    rows = backend._hf_generate(
        prompts, SamplingParams(max_new_tokens=new, repetition_penalty=penalty), backend._eos_ids()
    )
    return [tokens for tokens, _ in rows]


def test_the_static_decoder_writes_what_transformers_writes(backend):
    prompts = [
        backend.tokenizer(backend.render(chat(q)), add_special_tokens=False)["input_ids"]
        for q in QUESTIONS
    ]
    assert len({len(p) for p in prompts}) == 3  # rows of different lengths share the batch
    rows = StaticDecoder(backend.model).generate(
        prompts, 12, backend._eos_ids(), backend.tokenizer.pad_token_id
    )
    assert [r.tokens for r in rows] == hf_greedy(backend, prompts, 12)
    assert rows[2].stopped  # "Hi" is answered in fewer than 12 tokens


def test_captured_steps_serve_the_next_batch_of_as_many_rows(backend, replayed_graphs):
    # With CUDA graphs (replayed here by running the step), a batch keeps the captures and
    # the cache of the last one of as many rows when it fits: shorter prompts then leave
    # the earlier batch's keys in the cache, masked, and write what transformers writes.
    encode = lambda q: backend.tokenizer(  # noqa: E731
        backend.render(chat(q)), add_special_tokens=False
    )["input_ids"]
    decoder = StaticDecoder(backend.model)
    decoder.cuda_graphs = True
    pad, stops = backend.tokenizer.pad_token_id, backend._eos_ids()
    first = [encode(QUESTIONS[0]), encode(QUESTIONS[1])]
    rows = decoder.generate(first, 70, stops, pad)
    steps = decoder._captured
    assert steps.valid.shape[1] > max(map(len, first)) + 12
    second = [encode("Hi"), encode("Thanks!")]
    rows = decoder.generate(second, 12, stops, pad)
    assert [r.tokens for r in rows] == hf_greedy(backend, second, 12)
    assert decoder._captured is steps
    assert len(replayed_graphs) == len(set(replayed_graphs))  # no bucket captured twice
    three = decoder.generate([*second, encode(QUESTIONS[2])], 12, stops, pad)
    assert decoder._captured is not steps  # three rows: their own cache and graphs
    assert [r.tokens for r in three][:2] == [r.tokens for r in rows]


def test_the_repetition_penalty_is_applied_as_transformers_does(backend):
    prompt = backend.tokenizer(backend.render(chat(QUESTIONS[1])), add_special_tokens=False)
    ids = [prompt["input_ids"]]
    rows = StaticDecoder(backend.model).generate(
        ids, 16, backend._eos_ids(), backend.tokenizer.pad_token_id, repetition_penalty=1.3
    )
    assert rows[0].tokens == hf_greedy(backend, ids, 16, penalty=1.3)[0]
    assert rows[0].tokens != hf_greedy(backend, ids, 16)[0]


def test_results_report_tokens_time_and_why_generation_stopped(backend):
    short, long = backend.generate(
        [
            GenerationRequest(chat("Hi"), SamplingParams(max_new_tokens=40)),
            GenerationRequest(chat(QUESTIONS[1]), SamplingParams(max_new_tokens=5)),
        ]
    )
    assert short.finish_reason == "stop"
    assert 0 < short.completion_tokens < 40
    assert long.finish_reason == "length"
    assert long.completion_tokens == 5  # max_new_tokens counts new tokens, not the prompt
    assert long.prompt_tokens > 5
    assert long.seconds > 0


def test_a_seed_makes_sampling_repeatable(backend):
    def sample(seed: int) -> str:
        sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=10, seed=seed)
        return backend.generate([GenerationRequest(chat(QUESTIONS[1]), sampling)])[0].text

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def test_choices_score_the_same_in_a_batch_as_alone(backend):
    requests = [
        ChoiceRequest(chat("Is fire hot or cold? One word."), ("hot", "cold")),
        ChoiceRequest(chat("Which animal barks? One word."), ("cat", "dog", "fish")),
    ]
    together = backend.score_choices(requests)
    alone = [backend.score_choices([r])[0] for r in requests]
    for a, b in zip(together, alone, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        assert a.prompt_tokens == b.prompt_tokens
    assert all(score < 0 for score in together[1].logprobs)


def test_scoring_choices_uses_transformers_current_cache_names(backend):
    # The worker's log once said "`past_key_values`/`cache_params` are deprecated" on every
    # start: scoring read the prompt's cache under the name transformers 5.2x retired.
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    warning_once = logging.Logger.warning_once  # transformers' per-process "once"
    warning_once.cache_clear()
    logging.getLogger("transformers").addHandler(handler)
    try:
        backend.score_choices([ChoiceRequest(chat("Is fire hot or cold?"), ("hot", "cold"))])
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert not [r.getMessage() for r in records if "deprecated" in r.getMessage()]


def test_requests_with_different_sampling_come_back_in_order(backend):
    greedy = SamplingParams(max_new_tokens=8)
    warm = SamplingParams(temperature=0.7, max_new_tokens=8, seed=3)
    requests = [
        GenerationRequest(chat(q), s)
        for q, s in zip(QUESTIONS, [greedy, warm, greedy], strict=True)
    ]
    batched = backend.generate(requests)
    assert batched[0].text == backend.generate([requests[0]])[0].text
    assert batched[2].text == backend.generate([requests[2]])[0].text


def test_the_bundled_model_runs_in_float32_on_the_cpu(backend):
    assert backend.device == "cpu"
    assert next(backend.model.parameters()).dtype == torch.float32
    assert backend.fast is not None  # SmolLM2 is a Llama: the static-cache loop applies
