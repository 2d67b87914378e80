"""Helpers for the API tests: a client with a token, a stand-in model, queued tasks."""

from __future__ import annotations

import json
import threading

import pytest
from django.contrib.auth.models import User
from django.test import Client

from drafts import tasks
from drafts.api.tokens import ApiToken
from drafts.models import Draft
from inference.drafting import INTENTS
from inference.types import ChoiceResult, GenerationResult


class Api:
    """A client that sends one token with every request."""

    def __init__(self, secret: str, client: Client | None = None) -> None:
        self.client = client or Client()
        self.headers = {"Authorization": f"Bearer {secret}"}

    def get(self, path: str, **query: object):
        return self.client.get(path, query, headers=self.headers)

    def post(self, path: str, data: object = None, content_type: str = "application/json"):
        body = json.dumps(data) if content_type == "application/json" else data
        return self.client.post(path, body, content_type=content_type, headers=self.headers)


def api_for(user: User, access: str = ApiToken.WRITE) -> Api:
    _, secret = ApiToken.issue(user, "tests", access)
    return Api(secret)


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


def draft_url(draft: Draft, action: str = "") -> str:
    return f"/api/v1/drafts/{draft.pk}" + (f"/{action}" if action else "")


class ScriptedModel:
    """A stand-in model: every email is a complaint; with ``gate``, it waits for it first."""

    name = model_name = "scripted"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate

    def score_choices(self, requests):
        if self.gate is not None:
            self.gate.wait(10)
        complaint = list(INTENTS).index("complaint")
        scores = tuple(0.0 if i == complaint else -5.0 for i in range(len(INTENTS)))
        return [ChoiceResult(scores, 10, 0.01) for _ in requests]

    def generate(self, requests):
        return [
            GenerationResult(
                '{"product": "Acme CRM"}'
                if "as JSON" in request.messages[-1].content
                else "We are sorry about the outage.",
                *(50, 7, 0.01, "stop"),
            )
            for request in requests
        ]


def record_tasks(monkeypatch: pytest.MonkeyPatch, settings: object) -> list[tuple[str, tuple]]:
    """The tasks queued for django-q2's workers from now on, as (function, arguments),
    whatever the broker: queued at once (as with the ORM broker), recorded instead of sent."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "orm": "default"}
    calls: list[tuple[str, tuple]] = []

    def record(func: str, *args: object, **kwargs: object) -> None:
        calls.append((func, args))

    monkeypatch.setattr(tasks, "async_task", record)  # drafts.api.callbacks queues through it
    return calls
