"""The OpenAPI 3.1 description of the API, served at /api/v1/schema.

Written by hand as Python data next to the views it describes (drafts/api/views.py and
serialize.py): change both together. tests/test_api_schema.py checks every documented
operation against the running app with schemathesis.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from drafts.models import Draft, ReviewEvent
from drafts.outbox import Outbox
from inference.drafting import INTENTS

MAX_ID = 2**63 - 1


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
DATETIME = {"type": "string", "format": "date-time"}
URL = {"type": "string", "format": "uri"}
STATUSES = [key for key, _ in Draft.STATUSES]
REASONS = [key for key, _ in Draft.REJECT_REASONS]


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object whose properties are all present (but ``optional``)."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


DRAFT_PROPERTIES: dict[str, Any] = {
    "id": ID,
    "url": {**URL, "description": "This draft in the API."},
    "page": {**URL, "description": "This draft's review page in the browser."},
    "status": {"type": "string", "enum": STATUSES},
    "mailbox": ID,
    "message": _object(
        {
            "id": ID,
            "url": URL,
            "subject": STRING,
            "from_name": STRING,
            "from_address": STRING,
            "date": _nullable(DATETIME),
        }
    ),
    "intent": _nullable({"type": "string", "enum": list(INTENTS)}),
    "confidence": _nullable({"type": "number"}),
    "intent_scores": {"type": "object", "additionalProperties": {"type": "number"}},
    "language": _nullable(STRING),
    "fields": {
        "type": "object",
        "description": "Extracted fields: name → values, each with where it was found "
        "(value, source, span, verified).",
        "additionalProperties": {"type": "array", "items": {"type": "object"}},
    },
    "flags": {"type": "array", "items": STRING, "description": "Check codes, e.g. too_long."},
    "reply_text": {**STRING, "description": "The reply as it stands now."},
    "cc": {
        "type": "array",
        "items": STRING,
        "description": "Copies of the reply (Cc): at first the email's other recipients.",
    },
    "generated_text": {**STRING, "description": "The reply as the model wrote it."},
    "version": {**INTEGER, "description": "Bumped on every change; send it when deciding."},
    "error": {**STRING, "description": "Why generation failed, if it did."},
    "template": _nullable(_object({"id": ID, "name": STRING, "version": INTEGER})),
    "assigned_to": _nullable(STRING),
    "held_by": _nullable(_object({"user": STRING, "until": DATETIME})),
    "created_at": DATETIME,
    "ready_at": _nullable(DATETIME),
    "rewrite_instruction": {
        **_nullable(STRING),
        "description": "What a reviewer asked to change when they had this reply rewritten "
        "(see regenerate); null: written afresh.",
    },
    "due_at": {
        **_nullable(DATETIME),
        "description": "When the email must be answered by (the mailbox's reply target); null: "
        "no target.",
    },
    "updated_at": _nullable(DATETIME),
    "decided_at": _nullable(DATETIME),
    "decided_by": _nullable(STRING),
    "reject_reason": _nullable({"type": "string", "enum": REASONS}),
    "reject_note": STRING,
    "delivery": _nullable(
        _object(
            {
                "state": {"type": "string", "enum": [key for key, _ in Outbox.STATES]},
                "recipient": STRING,
                "message_id": STRING,
                "attempts": INTEGER,
                "next_attempt_at": DATETIME,
                "undo_until": {
                    **_nullable(DATETIME),
                    "description": "Until when the reply waits, so that the approval can be "
                    "undone (POST …/undo); null once an attempt was made.",
                },
                "last_error": STRING,
                "server_reply": STRING,
                "sent_at": _nullable(DATETIME),
            }
        )
    ),
    "files": {
        "type": "array",
        "description": "Files a reviewer attached to the reply; sent with it once approved.",
        "items": _object(
            {"id": INTEGER, "filename": STRING, "content_type": STRING, "size": INTEGER}
        ),
    },
}

EVENT = _object(
    {
        "action": {"type": "string", "enum": [key for key, _ in ReviewEvent.ACTIONS]},
        "user": _nullable(STRING),
        "created_at": DATETIME,
        "text_before": STRING,
        "text_after": STRING,
        "reason": _nullable({"type": "string", "enum": REASONS}),
        "note": STRING,
    }
)

MESSAGE_PROPERTIES: dict[str, Any] = {
    "id": ID,
    "url": URL,
    "page": URL,
    "mailbox": ID,
    "thread": _nullable(ID),
    "direction": {"type": "string", "enum": ["in", "out"]},
    "message_id": STRING,
    "in_reply_to": STRING,
    "subject": STRING,
    "from_name": STRING,
    "from_address": STRING,
    "reply_to": STRING,
    "to": STRING,
    "cc": STRING,
    "date": _nullable(DATETIME),
    "received_at": DATETIME,
    "redacted_at": {
        **_nullable(DATETIME),
        "description": "When the retention period removed the message's content (its text, "
        "addresses and subject are then empty); null while it is kept.",
    },
    "size": {**INTEGER, "description": "Bytes of the raw message."},
    "no_draft_reason": _nullable(
        {
            **STRING,
            "description": "Why the message got no draft: auto-reply, bounce, bulk, list, "
            "oversize, rate-limited, blocked, own-reply (one of our replies, come back).",
        }
    ),
    "defects": {"type": "array", "items": STRING},
    "attachments": {
        "type": "array",
        "items": _object(
            {
                "id": ID,
                "filename": STRING,
                "content_type": STRING,
                "size": INTEGER,
                "inline": {"type": "boolean"},
            }
        ),
    },
    "draft": _nullable(
        _object(
            {
                "id": ID,
                "url": URL,
                "status": {"type": "string", "enum": STATUSES},
                "version": INTEGER,
            }
        )
    ),
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {**STRING, "description": "Stable, for programs: e.g. version_conflict."},
                "message": {**STRING, "description": "What went wrong, for people."},
                "field": {
                    **_nullable(STRING),
                    "description": "The request field at fault, if one is.",
                },
                "status": {
                    "type": "string",
                    "enum": STATUSES,
                    "description": "409 and 422 only: the draft's status now.",
                },
                "version": {**INTEGER, "description": "409 and 422 only: the draft's version now."},
                "held_by": {**STRING, "description": "409 claimed: who is editing it."},
                "held_until": DATETIME,
                "placeholders": {
                    "type": "array",
                    "items": STRING,
                    "description": "422 placeholder_text: the placeholders in the reply.",
                },
            },
        }
    },
}

ADDRESS = {"type": "string", "maxLength": 998, "pattern": "@"}
MESSAGE_ID = {
    "type": "string",
    "maxLength": 490,
    "pattern": r"^<?[^\s<>]*@[^\s<>]*>?$",
    "description": "<id@host>; the angle brackets may be left out.",
}
OPTIONS = {
    "mailbox": {
        **ID,
        "description": "Mailbox id; by default the default mailbox "
        "(supervisors) or the reviewer's only mailbox.",
    },
    "callback_url": {
        "type": "string",
        "format": "uri",
        "maxLength": 2000,
        "pattern": "^https?://",
        "description": "POSTed the draft's JSON when the draft is ready or failed.",
    },
}
SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    "DraftSummary": _object(DRAFT_PROPERTIES),
    "Draft": _object({**DRAFT_PROPERTIES, "history": {"type": "array", "items": EVENT}}),
    "MessageSummary": _object(MESSAGE_PROPERTIES),
    "Message": _object({**MESSAGE_PROPERTIES, "text": STRING}),
    "SubmittedMessage": _object(
        {
            **MESSAGE_PROPERTIES,
            "text": STRING,
            "duplicate": {
                "type": "boolean",
                "description": "True when this email was stored before (status 200).",
            },
            "callback": _nullable(
                _object(
                    {
                        "id": ID,
                        "url": STRING,
                        "state": {
                            "type": "string",
                            "enum": ["pending", "delivering", "delivered", "retry", "failed"],
                        },
                    }
                )
            ),
        }
    ),
    "RawSubmission": {
        "type": "object",
        "required": ["raw"],
        "properties": {
            "raw": {
                "type": "string",
                "contentEncoding": "base64",
                "pattern": r"^[A-Za-z0-9+/]*={0,2}$",
                "description": "The RFC 822 message, base64-encoded.",
            },
            **OPTIONS,
        },
        "not": {"anyOf": [{"required": [name]} for name in ("from", "text")]},
    },
    "FieldsSubmission": {
        "type": "object",
        "required": ["from", "text"],
        "properties": {
            "from": {**ADDRESS, "description": "Sender, e.g. Li Wei <li@example.com>."},
            "to": {**ADDRESS, "description": "By default the mailbox's address."},
            "subject": {"type": "string", "maxLength": 998},
            "text": {"type": "string", "maxLength": 1_000_000},
            "message_id": {**MESSAGE_ID, "description": "By default derived from the fields."},
            "in_reply_to": MESSAGE_ID,
            "date": {**DATETIME, "description": "With a time zone; by default now."},
            **OPTIONS,
        },
        "not": {"required": ["raw"]},
    },
    "AnalyseResult": _object(
        {
            "intent": {"type": "string", "enum": list(INTENTS)},
            "confidence": {"type": "number"},
            "intent_scores": {"type": "object", "additionalProperties": {"type": "number"}},
            "language": STRING,
            "fields": DRAFT_PROPERTIES["fields"],
            "flags": {"type": "array", "items": STRING},
            "reply": STRING,
            "template": {**STRING, "description": "The prompt template version used."},
            "seconds": {"type": "number"},
        }
    ),
}


EXAMPLE_EMAIL = (
    "From: Li Wei <li.wei@example.cn>\r\nTo: support@acme.example\r\n"
    "Subject: Invoice for March\r\nMessage-ID: <invoice-0042@example.cn>\r\n"
    "Date: Mon, 03 Mar 2025 09:30:00 +0800\r\n\r\n"
    "Hello, please send me the invoice for order A-2024-0042.\r\n"
)
SUBMISSION_EXAMPLE = {
    "from": "Li Wei <li.wei@example.cn>",
    "subject": "发票问题",
    "text": "您好，我需要上个月的发票。订单号 A-2024-0042。",
}
APPROVE_BODY = {
    "type": "object",
    "required": ["version"],
    "properties": {
        "version": {**ID, "minimum": 0, "description": "The version you read."},
        "text": {
            "type": "string",
            "maxLength": 100_000,
            "pattern": r"\S",
            "description": "The reply to send; by default the draft's reply_text.",
        },
        "cc": {
            "type": "array",
            "items": {"type": "string", "maxLength": 320},
            "maxItems": 20,
            "description": "The copies (Cc) to send it to; by default the draft's cc. [] for none.",
        },
        "allow_placeholders": {
            "type": "boolean",
            "description": "Send bracketed text such as “[Your Name]” as written (by default "
            "a reply with placeholders is refused with 422).",
        },
    },
}
REJECT_BODY = {
    "type": "object",
    "required": ["reason"],
    "properties": {
        "reason": {"type": "string", "enum": REASONS},
        "note": {"type": "string", "maxLength": 5000},
        "version": {**ID, "minimum": 0, "description": "The version you read (optional)."},
        "block_sender": {
            "type": "boolean",
            "description": "Also block the sender in the draft's mailbox: their next emails "
            "are stored without a draft.",
        },
    },
}
REGENERATE_BODY = {
    "type": "object",
    "properties": {
        "instruction": {
            "type": "string",
            "maxLength": Draft.INSTRUCTION_MAX,
            "description": "What should change (“shorter”, “mention that refunds take 5 working "
            "days”): the model rewrites the reply as asked instead of writing a new one.",
        },
        "text": {
            "type": "string",
            "maxLength": 100_000,
            "description": "The reply to rewrite, if not the draft's saved one (e.g. your "
            "unsaved edit); only with an instruction.",
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "template": {**ID, "description": "A prompt template in use (its id)."},
        "version": {**ID, "minimum": 0, "description": "The version you read (optional)."},
    },
}
NOTE_BODY = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": Draft.NOTE_MAX}},
}
ANALYSE_BODY = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "maxLength": 1_000_000, "pattern": r"\S"},
        "subject": {"type": "string", "maxLength": 998},
        "from": {"type": "string", "maxLength": 998},
        "mailbox": OPTIONS["mailbox"],
    },
}


def _page(item: str) -> dict[str, Any]:
    return _object(
        {
            "results": {"type": "array", "items": _ref(item)},
            "next_cursor": {
                **_nullable(STRING),
                "description": "Pass as ?cursor= for the next page; null on the last page.",
            },
            "next": {**_nullable(URL), "description": "The next page's URL, or null."},
        }
    )


def _error(description: str, **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json(schema: dict[str, Any], description: str = "OK", **headers: Any) -> dict[str, Any]:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    return {**response, "headers": headers} if headers else response


def _body(schema: dict[str, Any], example: object) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


ERRORS = {
    "400": "A parameter or field is missing or invalid (the error names it).",
    "403": "The token is read-only.",
    "404": "No such object, or one the token's user may not see.",
    "409": "The draft cannot be decided now; the error carries its status and version.",
    "413": "The body is over REPLYHUB_API_MAX_BODY_BYTES.",
    "415": "The body's Content-Type is not one this endpoint takes.",
    "422": "The reply still has placeholder text such as “[Your Name]”; details.placeholders "
    "lists it (allow_placeholders: true sends it as written).",
    "503": "The model is missing or failed.",
    "504": "The model did not finish within REPLYHUB_API_ANALYSE_TIMEOUT seconds.",
}


def _operation(
    operation_id: str, summary: str, ok: dict[str, Any], *errors: str, **more: Any
) -> dict[str, Any]:
    """An authenticated operation: its answers, and the errors any such operation may give."""
    responses = {
        **ok,
        "401": _error(
            "No token, or an unknown or revoked one.", **{"WWW-Authenticate": {"schema": STRING}}
        ),
        "429": _error(
            "Over the rate limit (REPLYHUB_API_RATE_LIMIT requests a minute per token).",
            **{
                "Retry-After": {
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "Seconds to wait.",
                    "required": True,
                }
            },
        ),
        **{code: _error(ERRORS[code]) for code in errors},
    }
    return {"operationId": operation_id, "summary": summary, **more, "responses": responses}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _path_id(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": ID}]


PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Per page."),
    _query("cursor", STRING, "The next_cursor of the page before."),
]
DECIDING = ("400", "403", "404", "409", "413", "415")
LOCATION = {"Location": {"schema": URL}}


def openapi() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ReplyHub API",
            "version": "1",
            "description": "Submit customer emails, read the drafts the model wrote, and "
            "approve or reject them, with the permissions of the token's user. Errors are "
            '{"error": {"code", "message", "field"}}. See docs/api.md.',
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/messages": {
                "get": _operation(
                    "listMessages",
                    "Messages the token's user may see, oldest first",
                    {"200": _json(_page("MessageSummary"))},
                    "400",
                    parameters=[
                        _query("mailbox", ID, "Only this mailbox's messages."),
                        _query("received_since", DATETIME, "Only messages stored at or after."),
                        *PAGING,
                    ],
                ),
                "post": _operation(
                    "submitMessage",
                    "Submit an email; it is stored and drafted as an imported one",
                    {
                        "201": _json(_ref("SubmittedMessage"), "Stored", **LOCATION),
                        "200": _json(_ref("SubmittedMessage"), "Stored before", **LOCATION),
                    },
                    "400",
                    "403",
                    "413",
                    "415",
                    description="Raw RFC 822 (message/rfc822, or JSON {raw: base64}) or JSON "
                    "fields. 201 when stored, 200 when the same email was stored before (no "
                    "second draft). mailbox and callback_url go in the query string or, with "
                    "a JSON body, in the body (which wins).",
                    parameters=[
                        _query("mailbox", ID, "The mailbox id."),
                        _query(
                            "callback_url", OPTIONS["callback_url"], "Called back when drafted."
                        ),
                    ],
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [_ref("RawSubmission"), _ref("FieldsSubmission")]
                                },
                                "example": SUBMISSION_EXAMPLE,
                            },
                            "message/rfc822": {
                                "schema": {"contentMediaType": "message/rfc822"},
                                "example": EXAMPLE_EMAIL,
                            },
                        },
                    },
                ),
            },
            "/api/v1/messages/{message_id}": {
                "get": _operation(
                    "getMessage",
                    "One message, with its text",
                    {"200": _json(_ref("Message"))},
                    "404",
                    parameters=_path_id("message_id"),
                )
            },
            "/api/v1/drafts": {
                "get": _operation(
                    "listDrafts",
                    "Drafts the token's user may see, least recently changed first",
                    {"200": _json(_page("DraftSummary"))},
                    "400",
                    parameters=[
                        _query("status", {"type": "string", "enum": STATUSES}, "Only this status."),
                        _query("mailbox", ID, "Only this mailbox's drafts."),
                        _query(
                            "intent", {"type": "string", "enum": list(INTENTS)}, "Only this intent."
                        ),
                        _query("updated_since", DATETIME, "Only drafts changed at or after."),
                        *PAGING,
                    ],
                )
            },
            "/api/v1/drafts/{draft_id}": {
                "get": _operation(
                    "getDraft",
                    "One draft, with its history",
                    {"200": _json(_ref("Draft"))},
                    "404",
                    parameters=_path_id("draft_id"),
                )
            },
            "/api/v1/drafts/{draft_id}/approve": {
                "post": _operation(
                    "approveDraft",
                    "Approve the reply (optionally edited) and queue it for sending",
                    {"200": _json(_ref("Draft"), "Approved")},
                    *DECIDING,
                    "422",
                    parameters=_path_id("draft_id"),
                    requestBody=_body(APPROVE_BODY, {"version": 3, "text": "Dear Li Wei, …"}),
                )
            },
            "/api/v1/drafts/{draft_id}/reject": {
                "post": _operation(
                    "rejectDraft",
                    "Reject the draft with a reason; nothing is sent",
                    {"200": _json(_ref("Draft"), "Rejected")},
                    *DECIDING,
                    parameters=_path_id("draft_id"),
                    requestBody=_body(
                        REJECT_BODY, {"reason": "wrong_facts", "note": "The price is wrong."}
                    ),
                )
            },
            "/api/v1/drafts/{draft_id}/undo": {
                "post": _operation(
                    "undoApproval",
                    "Take back an approval whose reply has not gone out; the draft is back in "
                    "review",
                    {"200": _json(_ref("Draft"), "Undone: awaiting review again")},
                    *("403", "404", "409"),
                    description="Possible while the delivery is queued (see undo_until), "
                    "waiting for a retry, or failed: the mail server never accepted it. 409 "
                    "too_late once it is being sent or was sent; 409 not_approved when the "
                    "draft has no approval to undo.",
                    parameters=_path_id("draft_id"),
                )
            },
            "/api/v1/drafts/{draft_id}/reopen": {
                "post": _operation(
                    "reopenDraft",
                    "Take back a rejection; the draft is back in review with its text",
                    {"200": _json(_ref("Draft"), "Reopened: awaiting review again")},
                    *("403", "404", "409"),
                    description="The stats forget the rejection. 409 not_rejected when the "
                    "draft is not rejected; 409 redacted when the retention period has "
                    "removed its email's content.",
                    parameters=_path_id("draft_id"),
                )
            },
            "/api/v1/drafts/{draft_id}/regenerate": {
                "post": _operation(
                    "regenerateDraft",
                    "Ask the model for the draft again, or for a rewrite saying what should change",
                    {"200": _json(_ref("Draft"), "Queued for the model again")},
                    *DECIDING,
                    description="Allowed for a draft awaiting review or whose generation "
                    "failed; it is queued for the model (status queued) and ready again once "
                    "a worker has written it: poll the draft or use a callback.",
                    parameters=_path_id("draft_id"),
                    requestBody=_body(REGENERATE_BODY, {"version": 3, "instruction": "shorter"}),
                )
            },
            "/api/v1/drafts/{draft_id}/notes": {
                "post": _operation(
                    "addNote",
                    "Add a note for the team to the draft's history; never sent",
                    {"200": _json(_ref("Draft"), "The draft, its history ending with the note")},
                    *("400", "403", "404", "413", "415"),
                    description="Allowed in any status; the draft's text and version do not "
                    "change, so an edit in progress is not made stale by it.",
                    parameters=_path_id("draft_id"),
                    requestBody=_body(NOTE_BODY, {"text": "Asked finance about the refund."}),
                )
            },
            "/api/v1/analyse": {
                "post": _operation(
                    "analyse",
                    "Analyse a text and draft a reply now; nothing is stored",
                    {"200": _json(_ref("AnalyseResult"))},
                    *("400", "413", "415", "503", "504"),
                    description="Runs the configured model in the web server, at most "
                    "REPLYHUB_API_ANALYSE_TIMEOUT seconds "
                    f"({settings.REPLYHUB_API_ANALYSE_TIMEOUT} here).",
                    requestBody=_body(
                        ANALYSE_BODY,
                        {"text": "My invoice is wrong.", "subject": "Invoice", "from": "li@x.cn"},
                    ),
                )
            },
            "/api/v1/schema": {
                "get": {
                    "operationId": "getSchema",
                    "summary": "This description",
                    "security": [],
                    "responses": {"200": _json({"type": "object"})},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from /account/tokens/: rh_…",
                }
            },
            "schemas": SCHEMAS,
        },
    }
