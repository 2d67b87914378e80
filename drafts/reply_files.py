"""Files reviewers attach to a reply: read from the upload, their limits checked by name.

A reply carries at most MAX_FILES files and REPLYHUB_REPLY_FILES_MAX_BYTES in all (15 MB
by default: base64 makes that about 20 MB on the wire, under the 25 MB most mail servers
take). A refused upload stores nothing.
"""

from __future__ import annotations

import mimetypes
import re

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.db.models import Count, Sum
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from drafts.mailtext import safe_filename
from drafts.models import Draft

MAX_FILES = 10
CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")


class ReplyAttachment(models.Model):
    """A file a reviewer attached to a reply: sent with it once approved, else only
    downloadable by those who see the draft."""

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="reply_attachments")
    filename = models.CharField(max_length=255, help_text="Sanitized: no paths, no controls.")
    content_type = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    data = models.BinaryField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename


class FileRefused(ValueError):
    """An upload that cannot go with the reply; the message names the file and the limit."""


def read_uploads(draft: Draft, uploads: list[UploadedFile]) -> list[tuple[str, str, bytes]]:
    """(name, content type, bytes) of each upload, or FileRefused for the first that does
    not fit beside the files the reply already has."""
    if not uploads:
        raise FileRefused(_("Choose one or more files to attach."))
    have = draft.reply_attachments.aggregate(count=Count("id"), size=Sum("size"))
    if have["count"] + len(uploads) > MAX_FILES:
        raise FileRefused(
            _("A reply takes at most %(max)s files; this one has %(count)s already.")
            % {"max": MAX_FILES, "count": have["count"]}
        )
    limit = settings.REPLYHUB_REPLY_FILES_MAX_BYTES
    total = have["size"] or 0
    files = []
    for number, upload in enumerate(uploads, start=have["count"] + 1):
        name = safe_filename(upload.name or "", number)
        if not upload.size:
            raise FileRefused(_("“%(name)s” is empty; nothing was attached.") % {"name": name})
        total += upload.size
        if total > limit:
            raise FileRefused(
                _(
                    "“%(name)s” (%(size)s) would make the reply's files %(total)s in all, "
                    "over the %(limit)s a reply may carry; nothing was attached."
                )
                % {
                    "name": name,
                    "size": filesizeformat(upload.size),
                    "total": filesizeformat(total),
                    "limit": filesizeformat(limit),
                }
            )
        kind = upload.content_type or ""
        if not CONTENT_TYPE.fullmatch(kind) or kind == "application/octet-stream":
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        files.append((name, kind.lower(), upload.read()))
    return files
