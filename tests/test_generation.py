"""Draft generation in the worker task, with the real bundled model."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from drafts.ingest import ingest_message
from drafts.models import Draft, PromptTemplate
from drafts.tasks import generate_draft
from inference import registry
from inference.drafting import INTENTS
from tests.conftest import mail_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def quick_model(settings):
    """The real bundled model, with few new tokens to keep the tests quick."""
    settings.REPLYHUB_MAX_NEW_TOKENS = 24
    settings.REPLYHUB_ANALYSIS_MAX_NEW_TOKENS = 16


def queued_draft(mailbox, name="inquiry_en.eml") -> Draft:
    message, _ = ingest_message(mailbox, mail_bytes(name))
    return message.draft


def test_it_drafts_a_reply_with_intent_and_fields(mailbox, quick_model):
    draft = queued_draft(mailbox)
    assert generate_draft(draft.pk) == "ready"
    draft.refresh_from_db()
    assert draft.status == Draft.READY
    assert draft.intent in INTENTS
    assert 0 < draft.confidence <= 1
    assert set(draft.intent_scores) == set(INTENTS)
    assert draft.language == "en"
    assert draft.reply_text.startswith("Dear Olivia Brown,")
    assert draft.reply_text.endswith("Acme Cloud Support Team")
    assert draft.reply_text == draft.generated_text
    assert draft.fields["customer_name"][0]["value"] == "Olivia Brown"
    assert [f["value"] for f in draft.fields["key_dates"]] == ["December 15"]
    assert draft.template == PromptTemplate.active()
    assert draft.prompt_tokens > 100
    assert 0 < draft.completion_tokens <= 24 + 16
    assert draft.generation["max_new_tokens"] == 24
    assert set(draft.timings) == {"intent_s", "analysis_s", "reply_s"}
    assert draft.ready_at is not None


def test_a_chinese_email_gets_a_chinese_greeting(mailbox, quick_model):
    draft = queued_draft(mailbox, "chinese_gb2312.eml")
    generate_draft(draft.pk)
    draft.refresh_from_db()
    assert draft.language == "zh"
    assert draft.reply_text.startswith("尊敬的李娜：")
    assert [f["value"] for f in draft.fields["key_dates"]] == ["12月3日"]


def test_the_model_is_loaded_once_per_process(mailbox, quick_model, settings):
    first = registry.load_backend(settings.REPLYHUB_ENGINE, settings.REPLYHUB_MODEL)
    generate_draft(queued_draft(mailbox).pk)
    generate_draft(queued_draft(mailbox, "chinese_gb2312.eml").pk)
    assert registry.load_backend(settings.REPLYHUB_ENGINE, settings.REPLYHUB_MODEL) is first
    assert len(registry._loaded) == 1


def test_a_second_delivery_of_the_task_does_nothing(mailbox, quick_model):
    draft = queued_draft(mailbox)
    assert generate_draft(draft.pk) == "ready"
    text = Draft.objects.get(pk=draft.pk).reply_text
    assert generate_draft(draft.pk) == "skipped: not queued"
    assert Draft.objects.get(pk=draft.pk).reply_text == text


def test_a_missing_model_fails_the_draft_with_the_reason(mailbox, settings, alice):
    settings.REPLYHUB_MODEL = "/nowhere/model.gguf"
    draft = queued_draft(mailbox)
    assert generate_draft(draft.pk) == "failed"
    draft.refresh_from_db()
    assert draft.status == Draft.FAILED
    assert "Model not found at /nowhere/model.gguf" in draft.error
    assert "/nowhere/model.gguf" not in str(registry._loaded)  # failures are not cached
    assert draft.retry_generation(alice)
    assert Draft.objects.get(pk=draft.pk).status == Draft.QUEUED


def test_a_broken_model_file_fails_the_draft_with_the_reason(mailbox, settings, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    settings.REPLYHUB_MODEL = str(broken)
    draft = queued_draft(mailbox)
    assert generate_draft(draft.pk) == "failed"
    assert "Could not load the model" in Draft.objects.get(pk=draft.pk).error


def test_check_warns_when_the_model_is_missing(settings):
    settings.REPLYHUB_MODEL = "/nowhere/model.gguf"
    err = StringIO()
    call_command("check", stderr=err)
    assert "replyhub.W001" in err.getvalue()
    assert "/nowhere/model.gguf" in err.getvalue()
