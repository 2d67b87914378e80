"""Which draft the model writes next: a draft a person asked for again (a rewrite, a retry)
goes before the mail queued earlier, since someone waits for it on the draft page; the
page says where the draft stands and follows it until the model is done."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox
from drafts.tasks import generate_draft
from tests.apiclient import ScriptedModel, api_for, draft_url
from tests.conftest import all_at_once, mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db


class OrderedModel(ScriptedModel):
    """The scripted model, noting the emails of each reply it writes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.subjects: list[str] = []

    def generate(self, requests):
        for request in requests:
            if "as JSON" not in request.messages[-1].content:
                prompt = "\n".join(m.content for m in request.messages)
                self.subjects.append(next(s for s in SUBJECTS if s in prompt))
        return super().generate(requests)


SUBJECTS = {  # the fixture emails by their subject
    "Pricing for Acme CRM, 25 seats": "inquiry_en.eml",
    "Error log from Acme Analytics export": "with_attachment.eml",
    "询问一下价格": "chinese_gb2312.eml",
}


@pytest.fixture
def model(monkeypatch, settings) -> OrderedModel:
    settings.REPLYHUB_BATCH_SIZE = 1  # as on a CPU worker
    ordered = OrderedModel()
    monkeypatch.setattr("drafts.tasks.configured_backend", lambda: ordered)
    return ordered


def queued(mailbox, name: str) -> Draft:
    message, _ = ingest_message(mailbox, mail_bytes(name))
    return message.draft


def subject(draft: Draft) -> str:
    return draft.message.subject


def test_a_rewrite_goes_before_the_mail_queued_earlier(alice, mailbox, model):
    rewrite = make_ready_draft(mailbox)
    first, second = queued(mailbox, "with_attachment.eml"), queued(mailbox, "chinese_gb2312.eml")
    assert rewrite.regenerate(alice, instruction="shorter")
    # The first task in the queue is the first email's, but the reviewer waits for theirs.
    assert generate_draft(first.pk) == "ready: 1"
    assert model.subjects == [subject(rewrite)]
    assert Draft.objects.get(pk=rewrite.pk).status == Draft.READY
    assert Draft.objects.get(pk=first.pk).status == Draft.QUEUED
    # Every task still drafts one: the rewrite's own task takes the email left waiting.
    assert generate_draft(second.pk) == "ready: 1"
    assert generate_draft(rewrite.pk) == "ready: 1"
    assert model.subjects == [subject(rewrite), subject(second), subject(first)]
    assert set(Draft.objects.values_list("status", flat=True)) == {Draft.READY}
    assert Draft.objects.get(pk=rewrite.pk).requested_at is None  # done: no longer first


def test_a_retried_draft_goes_first_too_and_requests_keep_their_order(alice, mailbox, model):
    waiting = queued(mailbox, "chinese_gb2312.eml")
    rewrite = make_ready_draft(mailbox)
    failed = make_ready_draft(mailbox, "with_attachment.eml", status=Draft.FAILED, error="OOM")
    assert failed.retry_generation(alice)
    assert rewrite.regenerate(alice)
    for _ in range(3):
        assert generate_draft(waiting.pk) == "ready: 1"
    assert model.subjects == [subject(failed), subject(rewrite), subject(waiting)]


def test_a_batch_takes_the_requests_first(alice, mailbox, model, settings):
    settings.REPLYHUB_BATCH_SIZE = 2
    mail = [queued(mailbox, "with_attachment.eml"), queued(mailbox, "chinese_gb2312.eml")]
    rewrite = make_ready_draft(mailbox)
    assert rewrite.regenerate(alice, temperature=0.9)
    assert generate_draft(mail[1].pk) == "ready: 2"
    assert model.subjects == [subject(rewrite), subject(mail[0])]
    assert Draft.objects.get(pk=mail[1].pk).status == Draft.QUEUED


def test_the_draft_page_says_how_many_drafts_go_before_it(alice_client, alice, mailbox):
    first, second = queued(mailbox, "with_attachment.eml"), queued(mailbox, "chinese_gb2312.eml")
    page = alice_client.get(reverse("draft", args=[second.pk]))
    assert "Waiting for the model: 1 draft before this one." in page.text
    rewrite = make_ready_draft(mailbox)
    assert rewrite.regenerate(alice, instruction="shorter")
    page = alice_client.get(reverse("draft", args=[rewrite.pk]))
    assert "Waiting for the model: this draft is next." in page.text
    assert "Drafts asked for again go before new mail." in page.text
    page = alice_client.get(reverse("draft", args=[second.pk]))
    assert "Waiting for the model: 2 drafts before this one." in page.text
    assert "Drafts asked for again" not in page.text

    assert first.claim_for_generation()
    page = alice_client.get(reverse("draft", args=[first.pk]))
    assert "The model is writing this draft now." in page.text
    assert "This page shows the draft when it is ready." in page.text


def test_the_page_follows_the_draft_until_the_model_is_done(alice_client, alice, mailbox, model):
    waiting = queued(mailbox, "with_attachment.eml")
    rewrite = make_ready_draft(mailbox)
    assert rewrite.regenerate(alice, instruction="shorter")
    url = reverse("draft_progress", args=[waiting.pk])
    state = alice_client.get(url).json()
    assert state == {
        "status": "queued",
        "version": waiting.version,
        "progress": "Waiting for the model: 1 draft before this one.",
    }
    generate_draft(waiting.pk)  # drafts the rewrite first
    assert alice_client.get(url).json()["progress"] == "Waiting for the model: this draft is next."
    generate_draft(waiting.pk)
    state = alice_client.get(url).json()
    assert (state["status"], state["progress"]) == ("ready", "")
    page = alice_client.get(reverse("draft", args=[waiting.pk]))
    assert 'id="progress"' not in page.text  # a ready draft's page follows nothing


def test_the_progress_is_in_the_reviewers_language(alice_client, alice, mailbox):
    queued(mailbox, "with_attachment.eml")
    second = queued(mailbox, "chinese_gb2312.eml")
    alice_client.post(reverse("set_language"), {"language": "zh-hans"})
    with translation.override("zh-hans"):
        expected = "等待模型：前面还有 1 份草稿。"
    assert alice_client.get(reverse("draft_progress", args=[second.pk])).json()["progress"] == (
        expected
    )


def test_only_those_who_may_see_the_draft_can_follow_it(client, bob, mailbox):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    hidden = queued(sales, "chinese_gb2312.eml")
    client.force_login(bob)
    assert client.get(reverse("draft_progress", args=[hidden.pk])).status_code == 404


def test_a_rewrite_asked_through_the_api_goes_first_too(alice, mailbox, model):
    waiting = queued(mailbox, "with_attachment.eml")
    rewrite = make_ready_draft(mailbox)
    api = api_for(alice)
    response = api.post(draft_url(rewrite, "regenerate"), {"instruction": "shorter"})
    assert response.status_code == 200, response.content
    generate_draft(waiting.pk)
    assert model.subjects == [subject(rewrite)]


@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_the_queue_draft_each_email_once(
    alice, mailbox, model, default_template
):
    drafts = [queued(mailbox, name) for name in SUBJECTS.values()]
    rewrite = make_ready_draft(mailbox, "reply_in_thread.eml")
    assert rewrite.regenerate(alice, instruction="shorter")
    # Four tasks at once (the rewrite's own among them), each wanting the rewrite first.
    tasks = [rewrite.pk, *(d.pk for d in drafts)]
    results = all_at_once(*[lambda pk=pk: generate_draft(pk) for pk in tasks])
    assert sorted(results) == ["ready: 1"] * 4
    assert set(Draft.objects.values_list("status", flat=True)) == {Draft.READY}
    assert Draft.objects.filter(version=3).count() == 3  # queued, claimed once, stored once
    assert len(model.subjects) == 4
