"""A small OpenAI-compatible server around the transformers engine.

``python -m inference.server --model PATH`` loads the model once and answers
``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /healthz``, so several ReplyHub
workers (engine "openai") can share one loaded model. A ``response_format`` json_schema with
one string property and an ``enum`` is answered by choice scoring, with the choices' scores
as ``top_logprobs`` at the first token of the value. Requests are served concurrently; the
model runs one request at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inference.registry import Backend
from inference.types import (
    ChatMessage,
    ChoiceRequest,
    GenerationRequest,
    ModelLoadError,
    SamplingParams,
)

MAX_BODY = 4 * 1024 * 1024


class BadRequest(ValueError):
    """The request cannot be served; the message names the problem and ``param`` the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.status = param, status


class ModelServer(ThreadingHTTPServer):
    """An HTTP server that holds one backend and the lock that serialises its use."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, Handler)
        self.backend = backend
        self.model_name = str(getattr(backend, "model_name", backend.name))
        self.model_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    """Routes the three endpoints and turns every failure into an OpenAI-shaped error."""

    server: ModelServer

    def do_GET(self) -> None:
        """``/v1/models`` and ``/healthz``."""
        name = self.server.model_name
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": name, "object": "model", "created": 0, "owned_by": "replyhub"}
            self._reply(200, {"object": "list", "data": [model]})
        elif self.path == "/healthz":
            self._reply(200, {"status": "ok", "model": name})
        else:
            self._error(BadRequest(f"No route GET {self.path}", status=404))

    def do_POST(self) -> None:
        """``/v1/chat/completions``."""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(BadRequest(f"No route POST {self.path}", status=404))
            return
        try:
            self._reply(200, complete(self.server, self._read_json()))
        except BadRequest as exc:
            self._error(exc)
        except Exception as exc:  # the server keeps serving; the client learns what broke
            self._error(BadRequest(f"{type(exc).__name__}: {exc}", status=500))

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if length > MAX_BODY:
            raise BadRequest(f"The body is over {MAX_BODY} bytes", status=413)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise BadRequest(f"The body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object")
        return body

    def _error(self, exc: BadRequest) -> None:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        error = {"message": str(exc), "type": kind, "param": exc.param, "code": None}
        self._reply(exc.status, {"error": error})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request on stderr, as http.server does, without the date noise."""
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def complete(server: ModelServer, body: dict[str, Any]) -> dict[str, Any]:
    """Answer one chat-completions request: free text, or a choice under an enum schema."""
    if body.get("stream"):
        raise BadRequest("Streaming is not supported", "stream")
    if body.get("n") not in (None, 1):
        raise BadRequest("Only n=1 is supported", "n")
    messages = _messages(body.get("messages"))
    backend = server.backend
    started = time.time()
    enum = _enum_schema(body.get("response_format"))
    if enum is None:
        request = GenerationRequest(messages, _sampling(body))
        with server.model_lock:
            result = backend.generate([request])[0]
        content, finish, logprobs = result.text, result.finish_reason, None
        usage = (result.prompt_tokens, result.completion_tokens)
    else:
        prop, choices = enum
        top = _top_logprobs(body)
        with server.model_lock:
            scored = backend.score_choices([ChoiceRequest(messages, choices)])[0]
        ranked = sorted(zip(choices, scored.logprobs, strict=True), key=lambda c: -c[1])
        tokens = _choice_tokens(prop, ranked, top)
        content, finish = "".join(t["token"] for t in tokens), "stop"
        logprobs = {"content": tokens} if body.get("logprobs") else None
        usage = (scored.prompt_tokens, len(tokens))
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "logprobs": logprobs,
        "finish_reason": finish,
    }
    prompt_tokens, completion_tokens = usage
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(started),
        "model": server.model_name,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _messages(raw: object) -> tuple[ChatMessage, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    messages = []
    for i, m in enumerate(raw):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", "messages")
        if not isinstance(m.get("content"), str):
            raise BadRequest(f"messages[{i}].content must be a string", "messages")
        messages.append(ChatMessage(m["role"], m["content"]))
    return tuple(messages)


def _number(body: dict[str, Any], key: str, default: float, low: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise BadRequest(f"'{key}' must be a number >= {low}", key)
    return value


def _sampling(body: dict[str, Any]) -> SamplingParams:
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 200))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest("'max_tokens' must be a positive integer", "max_tokens")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("'seed' must be an integer", "seed")
    return SamplingParams(
        temperature=_number(body, "temperature", 1.0, 0.0),  # OpenAI's default
        top_p=_number(body, "top_p", 1.0, 0.0),
        max_new_tokens=max_tokens,
        repetition_penalty=_number(body, "repetition_penalty", 1.0, 0.0),
        seed=seed,
    )


def _enum_schema(response_format: object) -> tuple[str, tuple[str, ...]] | None:
    """The property and choices of a one-enum json_schema; None for plain text."""
    if response_format is None or response_format == {"type": "text"}:
        return None
    rf = response_format if isinstance(response_format, dict) else {}
    wrapper = rf.get("json_schema") if rf.get("type") == "json_schema" else None
    schema = wrapper.get("schema") if isinstance(wrapper, dict) else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(props, dict) and len(props) == 1:
        ((prop, spec),) = props.items()
        spec = spec if isinstance(spec, dict) else {}
        enum = spec.get("enum")
        if (
            spec.get("type", "string") == "string"
            and isinstance(enum, list)
            and enum
            and all(isinstance(c, str) and c for c in enum)
        ):
            return prop, tuple(enum)
    raise BadRequest(
        "Only response_format json_schema with exactly one string property with an 'enum' "
        "is supported",
        "response_format",
    )


def _top_logprobs(body: dict[str, Any]) -> int:
    top = body.get("top_logprobs") or 0
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
        raise BadRequest("'top_logprobs' must be an integer from 0 to 20", "top_logprobs")
    return top


def _choice_tokens(prop: str, ranked: list[tuple[str, float]], top: int) -> list[dict[str, Any]]:
    """The answer ``{"prop": "best"}`` as three OpenAI-shaped logprob tokens.

    The middle token is the value, and its ``top_logprobs`` are the choices with their
    scores, so a client finds every choice's score where the value starts.
    """
    best, score = ranked[0]
    head = "{" + json.dumps(prop, ensure_ascii=False) + ': "'
    value = json.dumps(best, ensure_ascii=False)[1:-1]
    alternatives = [_logprob(c, s) for c, s in ranked[:top]]
    return [_logprob(head, 0.0, []), _logprob(value, score, alternatives), _logprob('"}', 0.0, [])]


def _logprob(text: str, logprob: float, top: list | None = None) -> dict[str, Any]:
    entry = {"token": text, "logprob": logprob, "bytes": list(text.encode())}
    return entry if top is None else {**entry, "top_logprobs": top}


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, load the model, and serve until interrupted."""
    about = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m inference.server", description=about)
    parser.add_argument("--model", required=True, help="model folder or .gguf file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda/float16"')
    args = parser.parse_args(argv)

    from inference.registry import load_backend

    print(f"loading model {args.model} on {args.device} ...", file=sys.stderr, flush=True)
    try:
        # The transformers engine, or the native one for a ChatGLM folder (see engine_for).
        backend = load_backend("transformers", args.model, device=args.device)
    except ModelLoadError as exc:
        raise SystemExit(f"inference.server: {exc}") from None
    server = ModelServer((args.host, args.port), backend)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
