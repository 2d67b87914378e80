"""URLs of the review pages."""

from __future__ import annotations

from django.urls import path

from drafts import views

urlpatterns = [
    path("", views.queue, name="queue"),
    path("drafts/<int:draft_id>/", views.draft_detail, name="draft"),
    path("drafts/<int:draft_id>/action/", views.draft_action, name="draft_action"),
    path("drafts/<int:draft_id>/body.html", views.message_body, name="message_body"),
    path("drafts/retry-failed/", views.retry_failed, name="retry_failed"),
    path("stats/", views.stats_page, name="stats"),
]
