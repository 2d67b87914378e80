"""Full-text search over messages (subject, sender, body) in Chinese and English.

Neither SQLite's nor PostgreSQL's tokenizers split Chinese into words, and a substring scan
(`icontains`) reads every body: seconds at 100,000 messages. So the words are cut here, once,
when a message is saved: Latin-script words are lowercased, and every run of CJK characters
becomes its overlapping pairs plus its last character ("发票处理" → 发票 票处 处理 理), so that
any search of two or more characters is a phrase of pairs and a single character is a prefix.
The result is stored in ``Message.search_text`` and indexed by the database itself: an FTS5
table kept in step by triggers on SQLite, a stored ``to_tsvector('simple', …)`` column with
a GIN index on PostgreSQL (see `ensure_index`). A query is cut the same way; its terms must
all match, and the last Latin word matches as a prefix ("sync" finds "syncing").
"""

from __future__ import annotations

import re

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import RawSQL

# Kana, CJK ideographs (with extension A and compatibility ideographs) and Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
# PostgreSQL refuses a tsvector over 1 MB; a longer email is searchable by its first part.
MAX_DOCUMENT_CHARS = 100_000
MAX_QUERY_TERMS = 16
SIMILAR_TERMS = 32  # words of an email that look for similar ones


# The same tokens, CJK runs and Latin words in groups of their own: one pass tells them
# apart (a test per token cost a quarter of an import's time).
_GROUPED = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_CJK_START = re.compile(rf"[{_CJK}]")
_ASCII_WORD = re.compile(r"[^\W_]+", re.ASCII)


def _is_cjk(token: str) -> bool:
    return _CJK_START.match(token) is not None


def document(*parts: str) -> str:
    """The words of ``parts`` as the index stores them, separated by spaces."""
    text = " ".join(parts)[:MAX_DOCUMENT_CHARS]
    if text.isascii():  # no CJK, and lowercasing is casefolding: one pass over the text
        return " ".join(_ASCII_WORD.findall(text.lower()))
    words: list[str] = []
    for cjk, latin in _GROUPED.findall(text):
        if cjk:
            words.extend([cjk[i : i + 2] for i in range(len(cjk) - 1)])
            words.append(cjk[-1])
        else:
            words.append(latin.casefold())
    return " ".join(words)


def terms(query: str) -> list[tuple[list[str], bool]]:
    """The query as (phrase, is_prefix) terms: CJK runs as pairs, Latin words as words.

    The last Latin word also matches as a prefix, for a word still being typed; the others
    match exactly, so that "customer42 order" does not find customer420 to customer429.
    """
    tokens = _TOKEN.findall(query)[:MAX_QUERY_TERMS]
    found = []
    for position, token in enumerate(tokens, start=1):
        if _is_cjk(token):
            if len(token) == 1:
                found.append(([token], True))
            else:
                found.append(([token[i : i + 2] for i in range(len(token) - 1)], False))
        else:
            # A one-letter prefix would expand to most of the index: match it exactly.
            found.append(([token.casefold()], position == len(tokens) and len(token) > 1))
    return found


def _fts5_query(found: list[tuple[list[str], bool]]) -> str:
    return " AND ".join(
        f'"{" ".join(phrase)}"' + (" *" if prefix else "") for phrase, prefix in found
    )


def _tsquery(found: list[tuple[list[str], bool]]) -> str:
    parts = []
    for phrase, prefix in found:
        lexemes = [f"'{word}'" for word in phrase]
        if prefix:
            lexemes[-1] += ":*"
        parts.append("(" + " <-> ".join(lexemes) + ")")
    return " & ".join(parts)


def _match_sql(found: list[tuple[list[str], bool]]) -> tuple[str, list[object]]:
    if connection.vendor == "postgresql":
        return (
            "SELECT id FROM drafts_message"
            " WHERE search_vector @@ to_tsquery('simple'::regconfig, %s)",
            [_tsquery(found)],
        )
    return (
        "SELECT rowid FROM drafts_message_fts WHERE drafts_message_fts MATCH %s",
        [_fts5_query(found)],
    )


def matching_message_ids(query: str) -> RawSQL | None:
    """A subquery of the ids of messages matching ``query``; None when it has no words."""
    found = terms(query)
    return RawSQL(*_match_sql(found)) if found else None


def similar_message_ids(text: str, limit: int) -> list[int]:
    """Ids of the messages sharing the most words with ``text``, best first (BM25 on SQLite,
    ts_rank on PostgreSQL): any of its first SIMILAR_TERMS distinct words may match."""
    words = list(dict.fromkeys(w for w in document(text).split() if len(w) > 1))
    words = words[:SIMILAR_TERMS]
    if not words:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT id FROM drafts_message, to_tsquery('simple'::regconfig, %s) query"
                " WHERE search_vector @@ query ORDER BY ts_rank(search_vector, query) DESC"
                " LIMIT %s",
                [" | ".join(f"'{w}'" for w in words), limit],
            )
        else:
            cursor.execute(
                "SELECT rowid FROM drafts_message_fts WHERE drafts_message_fts MATCH %s"
                " ORDER BY bm25(drafts_message_fts) LIMIT %s",
                [" OR ".join(f'"{w}"' for w in words), limit],
            )
        return [row[0] for row in cursor.fetchall()]


def first_matching_ids(query: str, limit: int) -> list[int]:
    """The ids of the first ``limit`` messages the index finds for ``query`` (any order)."""
    found = terms(query)
    if not found:
        return []
    sql, params = _match_sql(found)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} LIMIT %s", [*params, limit])
        return [row[0] for row in cursor.fetchall()]


_SQLITE_INDEX = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS drafts_message_fts USING fts5("
    " search_text, content='drafts_message', content_rowid='id', tokenize='unicode61')",
    "CREATE TRIGGER IF NOT EXISTS drafts_message_fts_insert AFTER INSERT ON drafts_message BEGIN"
    " INSERT INTO drafts_message_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS drafts_message_fts_delete AFTER DELETE ON drafts_message BEGIN"
    " INSERT INTO drafts_message_fts(drafts_message_fts, rowid, search_text)"
    " VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS drafts_message_fts_update AFTER UPDATE OF search_text"
    " ON drafts_message BEGIN"
    " INSERT INTO drafts_message_fts(drafts_message_fts, rowid, search_text)"
    " VALUES ('delete', old.id, old.search_text);"
    " INSERT INTO drafts_message_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]
# A stored vector: matching a message reads it instead of cutting the text again.
_POSTGRES_INDEX = [
    "ALTER TABLE drafts_message ADD COLUMN IF NOT EXISTS search_vector tsvector"
    " GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, search_text)) STORED",
    "CREATE INDEX drafts_message_search ON drafts_message USING gin (search_vector)",
]
_SQLITE_TRIGGERS = (
    "drafts_message_fts_insert",
    "drafts_message_fts_delete",
    "drafts_message_fts_update",
)


def ensure_index(db: BaseDatabaseWrapper) -> bool:
    """Create the search index where it is missing; True when it had to be (re)built.

    Runs after every migrate: on SQLite a migration that rebuilds drafts_message (as
    Django does for many column changes) drops the triggers with the old table, and the
    index is then rebuilt from search_text so that no message goes missing from search.
    """
    if "drafts_message" not in db.introspection.table_names():
        return False  # migrated back to before messages existed
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'drafts_message_search'")
            if cursor.fetchone():
                return False
            for statement in _POSTGRES_INDEX:
                cursor.execute(statement)
            return True
        if db.vendor != "sqlite":
            return False
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (%s, %s, %s)",
            _SQLITE_TRIGGERS,
        )
        if cursor.fetchone()[0] == len(_SQLITE_TRIGGERS):
            return False
        for statement in _SQLITE_INDEX:
            cursor.execute(statement)
        cursor.execute("INSERT INTO drafts_message_fts(drafts_message_fts) VALUES ('rebuild')")
        return True
