"""The local SMTP sink of the default run: every message lands in var/outbox/ as .eml."""

from __future__ import annotations

import smtplib
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller

from drafts.management.commands.smtp_sink import SaveToFolder
from tests.conftest import free_port


def test_each_message_is_saved_as_an_eml_file(tmp_path):
    port = free_port()
    controller = Controller(SaveToFolder(tmp_path / "outbox"), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            for n in (1, 2):
                client.sendmail(
                    "support@acme.example",
                    ["olivia@northwind.example"],
                    f"Subject: Re: Pricing {n}\r\nMessage-ID: <r{n}@acme.example>\r\n\r\nHello\r\n",
                )
    finally:
        controller.stop()
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    saved = BytesParser(policy=policy.default).parsebytes(files[1].read_bytes())
    assert saved["Subject"] == "Re: Pricing 2"
    assert saved["Message-ID"] == "<r2@acme.example>"
