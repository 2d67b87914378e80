"""The API's OpenAPI description is true: every route is described, and schemathesis
fuzzes every operation against the app (in-process, over WSGI) with a valid token."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from drafts import tasks
from drafts.api import urls as api_urls
from drafts.api.schema import openapi
from drafts.api.tokens import ApiToken
from inference.drafting import INTENTS
from inference.types import ChoiceResult, GenerationResult
from replyhub.wsgi import application
from tests.conftest import make_ready_draft

# A few examples per operation, the same every run (a failure is never a fluke), and no
# example database. The token is ours to send (tests/test_api.py covers requests without
# one), so schemathesis leaves the Authorization header alone.
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            "max-examples": 8,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
    }
)
# Raw mail goes over the wire as the text it is.
schemathesis.serializer.alias("message/rfc822", "text/plain")
schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application, config=CONFIG)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def _keep_the_test_database_open() -> Iterator[None]:
    """Called over WSGI, Django closes the database connection after each request, and
    with it the test's transaction; its test client stops that the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


class QuickModel:
    """A stand-in for the model, for the analysis endpoint: instant and always the same."""

    name = model_name = "quick"

    def score_choices(self, requests):
        return [
            ChoiceResult(tuple(-float(i) for i in range(len(INTENTS))), 10, 0.0) for _ in requests
        ]

    def generate(self, requests):
        return [GenerationResult("Thank you for your email.", 10, 5, 0.0, "stop") for _ in requests]


@pytest.fixture
def token(db, carol, alice, mailbox, settings, monkeypatch, _keep_the_test_database_open) -> str:
    """A supervisor's token, with drafts to read and decide, and no rate limit in the way."""
    settings.REPLYHUB_API_RATE_LIMIT = 0
    monkeypatch.setattr(tasks, "configured_backend", QuickModel)
    make_ready_draft(mailbox)
    make_ready_draft(mailbox, "chinese_gb2312.eml", intent="complaint")
    _, secret = ApiToken.issue(carol, "schemathesis")
    return secret


@schema.parametrize()
@settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_described(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


def test_the_description_is_valid_openapi_and_served_without_a_token(client, db):
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises if not
    response = client.get("/api/v1/schema")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(openapi()))
    assert response.json()["openapi"] == "3.1.0"


def test_every_api_route_is_described_and_every_description_routed():
    routed = {
        "/" + str(pattern.pattern).replace("<int:", "{").replace(">", "}")
        for pattern in api_urls.urlpatterns
        if str(pattern.pattern).startswith("api/v1/")
    }
    assert routed == set(openapi()["paths"])
