"""URLs of the review pages."""

from __future__ import annotations

from django.urls import path

from drafts import account_views, draft_actions, draft_views, language, mail_views, views

urlpatterns = [
    path("", views.queue, name="queue"),
    path("drafts/bulk/", views.queue_bulk, name="queue_bulk"),
    path("drafts/<int:draft_id>/", draft_views.draft_detail, name="draft"),
    path("drafts/<int:draft_id>/action/", draft_actions.draft_action, name="draft_action"),
    path("drafts/<int:draft_id>/claim/", draft_views.draft_claim, name="draft_claim"),
    path("drafts/<int:draft_id>/progress/", draft_views.draft_progress, name="draft_progress"),
    path("drafts/<int:draft_id>/files/<int:file_id>/", draft_views.reply_file, name="reply_file"),
    path(
        "drafts/<int:draft_id>/saved-replies/<int:saved_id>/used/",
        draft_views.saved_reply_used,
        name="saved_reply_used",
    ),
    path("messages/", mail_views.not_drafted, name="not_drafted"),
    path("messages/<int:message_id>/", mail_views.message_detail, name="message"),
    path("messages/<int:message_id>/body.html", mail_views.message_body, name="message_body"),
    path("attachments/<int:attachment_id>/", mail_views.attachment_download, name="attachment"),
    path("import/", mail_views.upload, name="upload"),
    path("drafts/retry-failed/", views.retry_failed, name="retry_failed"),
    path("stats/", views.stats_page, name="stats"),
    path("language/", language.set_language, name="set_language"),
    path("account/security/", account_views.account_security, name="account_security"),
]
