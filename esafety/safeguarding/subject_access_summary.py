"""A subject access export as files: the JSON, and a page a person can read (issue 5 §8).

The page is one self-contained HTML file (its style inline, no script, nothing fetched),
drawn from the same document as the JSON, so the two never disagree. Long lists (the
filter's logged decisions) show their newest rows; the JSON has them all.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["HTML_ROWS", "as_html", "as_json"]

#: Rows of one list shown on the page (the JSON has every row).
HTML_ROWS = 500

_SECTIONS = (
    ("person", "Your record in the school's directory"),
    ("account", "Your account (no passwords or secrets)"),
    ("safeguarding", "Safeguarding records"),
    ("filtering", "The internet filter"),
    ("audit_trail", "The audit trail"),
    ("other_records", "Other records"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1b1b1b;
  line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #1d5c8c; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .5rem 0; }
dt { font-weight: 600; color: #444; } dd { margin: 0; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top;
  white-space: pre-wrap; }
.note { background: #fff6d6; border-left: 4px solid #c99a00; padding: .75rem 1rem; }
.empty { color: #666; font-style: italic; }
"""


def as_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


_LABELS = {
    "upn": "UPN (unique pupil number)",
    "dsl_told_in_person": "DSL told in person",
    "api_tokens": "API tokens",
    "for_review": "For review",
}


def _label(key: str) -> str:
    return escape(_LABELS.get(key, key.replace("_", " ").capitalize()))


def _scalar(value: Any) -> str:
    if value is None:
        return '<span class="empty">none</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    shown = rows[:HTML_ROWS]
    columns: list[str] = []
    for row in shown:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{_label(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_value(row.get(c))}</td>" for c in columns) + "</tr>"
        for row in shown
    )
    more = (
        f'<p class="empty">{HTML_ROWS} of {len(rows)} shown: every one is in the JSON file.</p>'
        if len(rows) > HTML_ROWS
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return '<span class="empty">none</span>'
        items = "".join(f"<dt>{_label(k)}</dt><dd>{_value(v)}</dd>" for k, v in value.items())
        return f"<dl>{items}</dl>"
    if isinstance(value, list):
        if not value:
            return '<span class="empty">none</span>'
        if all(isinstance(v, dict) for v in value):
            return _table(value)
        return "<ul>" + "".join(f"<li>{_value(v)}</li>" for v in value) + "</ul>"
    return _scalar(value)


def _concerns(concerns: list[dict[str, Any]]) -> str:
    if not concerns:
        return '<p class="empty">No safeguarding concern that this export may include.</p>'
    parts = []
    for concern in concerns:
        facts = {
            k: v
            for k, v in concern.items()
            if k not in ("people", "entries", "steps", "attachments")
        }
        parts.append(
            f"<h3>Concern {escape(str(concern['id']))}: {escape(str(concern['kind']))}</h3>"
            f"{_value(facts)}"
            f"<h4>People</h4>{_value(concern['people'])}"
            f"<h4>Notes, corrections and changes</h4>{_value(concern['entries'])}"
            f"<h4>Steps taken</h4>{_value(concern['steps'])}"
            f"<h4>Attachments (listed, not included)</h4>{_value(concern['attachments'])}"
        )
    return "".join(parts)


def as_html(document: dict[str, Any]) -> str:
    about = document.get("export", {})
    name = escape(str(about.get("name") or about.get("subject") or ""))
    body = [
        f"<h1>Information held about {name}</h1>",
        f'<p class="note">{escape(str(about.get("for_review", "")))}</p>',
        _value({k: v for k, v in about.items() if k not in ("for_review",)}),
    ]
    for key, title in _SECTIONS:
        section = document.get(key)
        body.append(f"<h2>{escape(title)}</h2>")
        if key == "safeguarding" and isinstance(section, dict):
            body.append(_concerns(section.get("concerns", [])))
            rest = {k: v for k, v in section.items() if k != "concerns"}
            body.append(_value(rest))
        else:
            body.append(_value(section))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Subject access: {name}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
