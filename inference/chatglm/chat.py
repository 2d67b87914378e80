"""ChatGLM's chat formats: ReplyHub's messages in, prompt ids out, and replies cleaned up.

- **ChatGLM-6B** (as its ``chat()`` builds it): a single question is passed unchanged;
  with earlier turns the prompt is ``[Round 0]\\n问：{q}\\n答：{r}\\n`` per turn, then
  ``[Round n]\\n问：{query}\\n答：``. The tokenizer appends ``[gMASK] <sop>``.
- **ChatGLM2-6B**: ``[Round 1]\\n\\n问：{q}\\n\\n答：{r}\\n\\n`` per turn (counting from 1),
  then ``[Round n]\\n\\n问：{query}\\n\\n答：``, after ``[gMASK] sop``.
- **ChatGLM3-6B**: ``[gMASK] sop``, then per message its role token, a metadata line
  (empty) and the content; the prompt ends with ``<|assistant|>``.

ChatGLM-6B and ChatGLM2-6B have no system role: system text is put before the first
question, separated by a blank line.
"""

from __future__ import annotations

import re

from inference.chatglm.tokenizer import GLM1Tokenizer, GLM3Tokenizer
from inference.types import ChatMessage

_CJK = r"[\u4e00-\u9fff]"
_PUNCTUATION = ((",", "，"), ("!", "！"), (":", "："), (";", "；"), (r"\?", "？"))


def rounds(messages: tuple[ChatMessage, ...]) -> tuple[list[tuple[str, str]], str]:
    """(earlier (question, answer) pairs, the question now) of a chat.

    System text joins the first question; consecutive messages of one role are joined; a
    question left unanswered before the last one is answered with "".
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[list[str]] = []  # [question, answer]
    for message in messages:
        if message.role == "user":
            if turns and not turns[-1][1]:  # still unanswered: one longer question
                turns[-1][0] = _join(turns[-1][0], message.content)
            else:
                turns.append([message.content, ""])
        elif message.role == "assistant":
            if not turns:
                turns.append(["", ""])
            turns[-1][1] = _join(turns[-1][1], message.content)
    if not turns or turns[-1][1]:
        turns.append(["", ""])  # the chat ends with an answer: ask for the next one
    if system:
        turns[0][0] = _join(system, turns[0][0])
    history = [(q, a) for q, a in turns[:-1]]
    return history, turns[-1][0]


def _join(first: str, second: str) -> str:
    return f"{first}\n\n{second}" if first and second else first or second


def v1_text(history: list[tuple[str, str]], query: str) -> str:
    """ChatGLM-6B's prompt text for a question and the turns before it."""
    if not history:
        return query
    text = "".join(f"[Round {i}]\n问：{q}\n答：{a}\n" for i, (q, a) in enumerate(history))
    return f"{text}[Round {len(history)}]\n问：{query}\n答："


def v2_text(history: list[tuple[str, str]], query: str) -> str:
    """ChatGLM2-6B's prompt text for a question and the turns before it."""
    text = "".join(f"[Round {i}]\n\n问：{q}\n\n答：{a}\n\n" for i, (q, a) in enumerate(history, 1))
    return f"{text}[Round {len(history) + 1}]\n\n问：{query}\n\n答："


def prompt_ids(
    tokenizer: GLM1Tokenizer | GLM3Tokenizer, chat_format: str, messages: tuple[ChatMessage, ...]
) -> list[int]:
    """The ids the model continues to answer ``messages``, in the model's chat format."""
    if chat_format == "chatglm3":
        ids = list(tokenizer.prefix)
        for message in messages:
            ids += tokenizer.message(message.role, message.content)
        return [*ids, tokenizer.role("assistant")]
    history, query = rounds(messages)
    if chat_format == "chatglm":
        return tokenizer.prompt(v1_text(history, query))
    return [*tokenizer.prefix, *tokenizer.encode(v2_text(history, query))]


def answer_prefix(tokenizer: GLM1Tokenizer | GLM3Tokenizer, chat_format: str) -> list[int]:
    """Ids every answer starts with, after the prompt: ChatGLM3's (empty) metadata line."""
    return tokenizer.encode("\n") if chat_format == "chatglm3" else []


def clean_reply(text: str, chat_format: str) -> str:
    """The reply as the model's own ``chat()`` returns it.

    ChatGLM-6B turns ASCII punctuation next to Chinese characters into full-width; ChatGLM3
    drops the metadata line before the content. All fill in their training date placeholder.
    """
    if chat_format == "chatglm3":
        metadata, newline, content = text.partition("\n")
        if newline and not metadata.strip():
            text = content
    text = text.strip().replace("[[训练时间]]", "2023年")
    if chat_format == "chatglm":
        for ascii_mark, full_width in _PUNCTUATION:
            text = re.sub(rf"({_CJK}){ascii_mark}", rf"\1{full_width}", text)
            text = re.sub(rf"{ascii_mark}({_CJK})", rf"{full_width}\1", text)
    return text
