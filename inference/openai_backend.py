"""The openai engine: a model served over HTTP by anything that speaks chat completions.

vLLM, TGI, Ollama, the llama.cpp server, ChatGLM's API server and ``python -m
inference.server`` all answer ``POST {base_url}/chat/completions``. This module talks to them
with the standard library only, retries what is worth retrying, and turns every other failure
into an :class:`EndpointError` that names the URL, the status and the server's own words.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

from inference.types import (
    ChatMessage,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
)

log = logging.getLogger(__name__)

# Overloaded or restarting servers answer these; anything else in 4xx will not get better.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT = 30.0  # seconds; caps both the backoff and a server's Retry-After
UNSEEN_LOGPROB = -30.0  # a choice the server gave no log-probability for
MAX_ERROR_CHARS = 300
VALUE_START = re.compile(r'"choice"\s*:\s*"')


class EndpointError(RuntimeError):
    """The chat-completions server failed or answered something unusable; the message says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Attempt(Exception):
    """One failed try: whether it is worth another, and what the server said."""

    def __init__(
        self, reason: str, retry: bool, status: int | None = None, wait: float = 0.0
    ) -> None:
        super().__init__(reason)
        self.reason, self.retry, self.status, self.wait = reason, retry, status, wait


class OpenAICompatibleBackend:
    """Generation and choice scoring through an OpenAI-compatible chat-completions server."""

    name = "openai"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str = "",
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 8,
    ) -> None:
        # ``device`` is the server's business; it is accepted so the registry can pass it.
        self.model_name = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = max(concurrency, 1)

    def __repr__(self) -> str:
        # The default repr is fine too, but this one is sure never to show the key.
        return f"OpenAICompatibleBackend(model={self.model_name!r}, url={self.url!r})"

    # -- generation ------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One chat completion per request, sent concurrently so the server can batch them.

        Results come back in the order of ``requests``; the first failure is raised.
        """
        if len(requests) <= 1:
            return [self._generate_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._generate_one, requests))

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        sampling = request.sampling
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": _messages(request.messages),
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        if sampling.repetition_penalty != 1.0:
            payload["repetition_penalty"] = sampling.repetition_penalty  # a vLLM extra
        started = time.monotonic()
        answer = self._post(payload)
        choice = _first_choice(answer, self.url)
        usage = answer.get("usage") or {}
        return GenerationResult(
            text=(choice["message"].get("content") or "").strip(),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=time.monotonic() - started,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    # -- constrained choice ----------------------------------------------------------------

    def score_choices(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        """Ask the server to pick one choice under a JSON schema, with its confidences.

        Each request is answered under ``response_format`` json_schema ``{"choice": enum}``
        at temperature 0, so the answer is one of the choices by construction, never parsed
        out of free text; an answer outside the choices means the server ignored the schema,
        and raises :class:`EndpointError`.

        The scores come from ``logprobs.content``: at the first token where the value of
        ``choice`` starts, each choice gets the best log-probability among that token and
        its ``top_logprobs`` entries whose text, stripped of quotes and spaces, is a
        non-empty prefix of the choice. That is the log-probability of the choice's first
        token, an approximation of the in-process engine's mean per token; choices that
        share their first token share the score. A choice with no matching entry gets
        -30.0. A server that returns no log-probabilities gives the chosen label 0.0 and
        the others -30.0.
        """
        if len(requests) <= 1:
            return [self._score_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._score_one, requests))

    def _score_one(self, request: ChoiceRequest) -> ChoiceResult:
        choices = list(request.choices)
        payload = {
            "model": self.model_name,
            "messages": _messages(request.messages),
            # The JSON around the value is a handful of tokens; a label is at most one per char.
            "max_tokens": 16 + max((len(c) for c in choices), default=0),
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "choice",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"choice": {"type": "string", "enum": choices}},
                        "required": ["choice"],
                        "additionalProperties": False,
                    },
                },
            },
        }
        started = time.monotonic()
        answer = self._post(payload)
        choice = _first_choice(answer, self.url)
        content = choice["message"].get("content") or ""
        try:
            chosen = json.loads(content)["choice"]
        except (ValueError, TypeError, KeyError):
            chosen = None
        if chosen not in choices:
            raise EndpointError(
                f"POST {self.url}: the server ignored the schema: it answered "
                f"{_truncate(content)!r}, not one of {choices} (does it support response_format "
                "json_schema?)"
            )
        tokens = (choice.get("logprobs") or {}).get("content") or []
        scores = _choice_logprobs(tokens, choices) or [
            0.0 if c == chosen else UNSEEN_LOGPROB for c in choices
        ]
        usage = answer.get("usage") or {}
        return ChoiceResult(
            logprobs=tuple(scores),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            seconds=time.monotonic() - started,
        )

    # -- HTTP ------------------------------------------------------------------------------

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON, retrying transient failures; the decoded JSON answer."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                raw = self._send(body, headers)
                break
            except _Attempt as failed:
                if not failed.retry or attempt == attempts:
                    tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                    raise EndpointError(
                        f"POST {self.url} failed after {tries}: {failed.reason}", failed.status
                    ) from None
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_WAIT)
                delay = delay / 2 + random.uniform(0, delay / 2)  # jitter spreads the workers
                delay = min(max(delay, failed.wait), MAX_WAIT)
                log.warning(
                    "POST %s: %s; retrying in %.2f s (attempt %d of %d)",
                    self.url,
                    failed.reason,
                    delay,
                    attempt + 1,
                    attempts,
                )
                time.sleep(delay)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise EndpointError(
                f"POST {self.url} returned a body that is not JSON: {self._clean(raw)!r}"
            ) from None
        if not isinstance(answer, dict):
            raise EndpointError(f"POST {self.url} returned JSON that is not an object")
        return answer

    def _send(self, body: bytes, headers: dict[str, str]) -> bytes:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                detail = _error_message(exc.read())
            except (OSError, http.client.HTTPException):
                detail = exc.reason or ""
            reason = f"HTTP {status}: {self._clean(detail)}" if detail else f"HTTP {status}"
            wait = _retry_after(exc.headers.get("Retry-After")) if exc.headers else 0.0
            raise _Attempt(reason, status in RETRY_STATUSES, status, wait) from None
        except urllib.error.URLError as exc:
            raise _Attempt(self._network_reason(exc.reason), retry=True) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _Attempt(self._network_reason(exc), retry=True) from None

    def _network_reason(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            return f"timed out: no answer within {self.timeout:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused (is the server running?)"
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve the host name ({reason.strerror})"
        return self._clean(str(reason) or type(reason).__name__)

    def _clean(self, text: str | bytes) -> str:
        """Truncated, and with the API key blanked should a server echo it back."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return _truncate(text)


def _messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _first_choice(answer: dict[str, Any], url: str) -> dict[str, Any]:
    try:
        choice = answer["choices"][0]
        if not isinstance(choice["message"], dict):
            raise TypeError
    except (KeyError, IndexError, TypeError):
        raise EndpointError(
            f"POST {url} returned JSON without choices[0].message: {_truncate(json.dumps(answer))}"
        ) from None
    return choice


def _error_message(raw: bytes) -> str:
    """The server's own words: OpenAI's ``{"error": {"message": ...}}``, its kin, or the text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str) and value:
                return value
    return text


def _retry_after(value: str | None) -> float:
    """Seconds asked for by a ``Retry-After`` header (a number or an HTTP date); 0 if none."""
    if not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return 0.0


def _choice_logprobs(tokens: list[dict[str, Any]], choices: list[str]) -> list[float] | None:
    """Per-choice scores from the token where the value starts; None if it cannot be found."""
    text = "".join(str(t.get("token", "")) for t in tokens)
    match = VALUE_START.search(text)
    if not match:
        return None
    offset = 0
    for token in tokens:
        offset += len(str(token.get("token", "")))
        if offset > match.end():
            break
    else:
        return None
    candidates = [token, *(token.get("top_logprobs") or [])]
    scores = []
    for choice in choices:
        matching = [
            float(entry["logprob"])
            for entry in candidates
            if isinstance(entry.get("logprob"), int | float)
            and (piece := str(entry.get("token", "")).strip(" \t\n\"'"))
            and choice.startswith(piece)
        ]
        scores.append(max(matching, default=UNSEEN_LOGPROB))
    return scores


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
