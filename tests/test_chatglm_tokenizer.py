"""ChatGLM's tokenizers and chat formats against the original's golden strings and ids."""

from __future__ import annotations

import io

import pytest
import sentencepiece

from inference.chatglm import chat
from inference.chatglm.config import read_config
from inference.chatglm.tokenizer import GLM1Tokenizer, GLM3Tokenizer, blank_decode, blank_encode
from inference.types import ChatMessage
from tests.test_chatglm import V1, V3, golden_tokenizer_data

V3_GOLDEN = golden_tokenizer_data(V3)
V1_GOLDEN = golden_tokenizer_data(V1)


@pytest.fixture(scope="module")
def glm3() -> GLM3Tokenizer:
    return GLM3Tokenizer(V3 / "tokenizer.model")


def make_ice_text_model(path) -> None:
    """A small stand-in for ChatGLM-6B's ``ice_text.model`` (the official file could not be
    had): trained on the golden strings, with the same user-defined pieces in front
    (<pad> = 3, <n> = 4, <|tab|>, <|blank_2..80|>) and byte fallback."""
    texts = [blank_encode(s["text"]) for s in V1_GOLDEN["strings"]]
    texts += [blank_encode(p["prompt"]) for p in V1_GOLDEN["chat_prompts"]]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts * 5),
        model_writer=model,
        vocab_size=600,
        hard_vocab_limit=False,
        byte_fallback=True,
        normalization_rule_name="identity",  # so the test sees our processing, not NFKC's
        remove_extra_whitespaces=False,
        user_defined_symbols=["<pad>", "<n>", "<|tab|>", *[f"<|blank_{n}|>" for n in range(2, 81)]],
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())


# -- ChatGLM3 ---------------------------------------------------------------------------------


def test_chatglm3_special_tokens_follow_the_sentencepiece_vocabulary(glm3):
    expected = {k: v for k, v in V3_GOLDEN["special_token_ids"].items() if not k.startswith("<")}
    expected.update({k: v for k, v in V3_GOLDEN["special_token_ids"].items() if k.startswith("<|")})
    assert glm3.special_ids == expected
    assert glm3.vocab_size == V3_GOLDEN["vocab_size_with_specials"] == 64798
    assert (glm3.pad_id, glm3.eos_id) == (0, 2)


@pytest.mark.parametrize("case", V3_GOLDEN["strings"], ids=lambda c: repr(c["text"])[:30])
def test_chatglm3_ids_and_decoding_are_the_originals(glm3, case):
    ids = glm3.encode(case["text"])
    assert ids == case["ids"] == case["sp_encode_ids"]
    assert [glm3.sp.id_to_piece(i) for i in ids] == case["tokens"]
    assert [*glm3.prefix, *ids] == case["ids_add_special_tokens"]
    assert glm3.decode(ids) == case["decode"]
    # With special tokens the original puts spaces where the dummy prefix was: kept as is.
    assert glm3.decode([*glm3.prefix, *ids]) == case["decode_add_special_tokens"]
    assert glm3.decode([*glm3.prefix, *ids], skip_special_tokens=True) == case["decode"]


@pytest.mark.parametrize("case", V3_GOLDEN["chat_inputs"], ids=lambda c: c["query"][:20])
def test_chatglm3_chat_prompts_are_the_originals(glm3, case):
    messages = [ChatMessage(m["role"], m["content"]) for m in case["history"]]
    messages.append(ChatMessage("user", case["query"]))
    ids = chat.prompt_ids(glm3, "chatglm3", tuple(messages))
    assert ids == case["input_ids"]
    assert glm3.decode(ids) == case["decode"]


def test_chatglm3_answers_lose_their_metadata_line_and_placeholder():
    assert chat.clean_reply("\n您好，截至[[训练时间]]。 ", "chatglm3") == "您好，截至2023年。"
    assert chat.answer_prefix(GLM3Tokenizer(V3 / "tokenizer.model"), "chatglm3") == [30910, 13]


def test_chatglm2_rounds_count_from_one_with_blank_lines():
    messages = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Where is my order?"),
        ChatMessage("assistant", "Which order?"),
        ChatMessage("user", "58213"),
    )
    assert chat.v2_text(*chat.rounds(messages)) == (
        "[Round 1]\n\n问：Be brief.\n\nWhere is my order?\n\n答：Which order?\n\n"
        "[Round 2]\n\n问：58213\n\n答："
    )


# -- ChatGLM-6B -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V1_GOLDEN["strings"], ids=lambda c: repr(c["text"])[:30])
def test_chatglm_6b_text_processing_is_the_originals(case):
    assert blank_encode(case["text"]) == case["preprocessed"]
    assert blank_decode(case["preprocessed"]) == case["postprocess_of_preprocessed"]


@pytest.mark.parametrize("case", V1_GOLDEN["chat_prompts"], ids=lambda c: c["query"])
def test_chatglm_6b_chat_prompts_are_the_originals(case):
    messages = []
    for question, answer in case["history"]:
        messages += [ChatMessage("user", question), ChatMessage("assistant", answer)]
    messages.append(ChatMessage("user", case["query"]))
    assert chat.v1_text(*chat.rounds(tuple(messages))) == case["prompt"]


@pytest.mark.parametrize("case", V1_GOLDEN["responses"], ids=lambda c: c["raw"][:20])
def test_chatglm_6b_replies_get_its_punctuation(case):
    assert chat.clean_reply(case["raw"], "chatglm") == case["process_response"]


def test_chatglm_6b_tokenizes_through_its_sentencepiece_model(tmp_path):
    make_ice_text_model(tmp_path / "ice_text.model")
    tokenizer = GLM1Tokenizer(tmp_path / "ice_text.model", read_config(V1))
    for case in V1_GOLDEN["strings"]:
        ids = tokenizer.encode(case["text"])
        assert tokenizer.decode(ids) == case["text"]
        assert tokenizer.sp.decode(ids) == case["preprocessed"]  # blanks went in as pieces
    assert tokenizer.encode("a\tb") == tokenizer.sp.encode("a<|tab|>b")
    prompt = tokenizer.prompt("你好")
    assert prompt[-2:] == [130001, 130004]  # [gMASK] <sop>
    assert tokenizer.decode([*prompt, 130005, 3]) == "你好"  # specials and <pad> are dropped


def test_system_text_joins_the_first_question_for_chat_formats_without_roles():
    history, query = chat.rounds(
        (ChatMessage("system", "You are Acme's support."), ChatMessage("user", "Hi"))
    )
    assert (history, query) == ([], "You are Acme's support.\n\nHi")
