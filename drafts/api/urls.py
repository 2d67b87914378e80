"""URLs of the API (/api/v1/…) and of the page where people manage their tokens."""

from __future__ import annotations

from django.urls import path, re_path

from drafts.api import pages, views

urlpatterns = [
    path("api/v1/drafts", views.draft_list, name="api_drafts"),
    path("api/v1/drafts/<int:draft_id>", views.draft_detail, name="api_draft"),
    path("api/v1/drafts/<int:draft_id>/approve", views.draft_approve, name="api_draft_approve"),
    path("api/v1/drafts/<int:draft_id>/reject", views.draft_reject, name="api_draft_reject"),
    path("api/v1/drafts/<int:draft_id>/undo", views.draft_undo, name="api_draft_undo"),
    path("api/v1/drafts/<int:draft_id>/reopen", views.draft_reopen, name="api_draft_reopen"),
    path(
        "api/v1/drafts/<int:draft_id>/regenerate",
        views.draft_regenerate,
        name="api_draft_regenerate",
    ),
    path("api/v1/drafts/<int:draft_id>/notes", views.draft_note, name="api_draft_note"),
    path("api/v1/messages", views.message_list, name="api_messages"),
    path("api/v1/messages/<int:message_id>", views.message_detail, name="api_message"),
    path("api/v1/analyse", views.analyse, name="api_analyse"),
    path("api/v1/schema", views.schema, name="api_schema"),
    re_path(r"^api/(?P<rest>[\s\S]*)\Z", views.not_found),  # any other path, newlines too
    path("account/tokens/", pages.tokens_page, name="api_tokens"),
]
