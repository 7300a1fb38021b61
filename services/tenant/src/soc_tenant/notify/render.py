"""What a notice looks like on each channel: e-mail (plain text and HTML from the channel's
templates), a signed JSON webhook, a Slack or Microsoft Teams incoming-webhook message. Pure
functions, tested without I/O.

Templates use ``${name}`` placeholders (:class:`string.Template`): small enough that a customer
cannot run code through them, strict enough that a misspelt name is refused when the channel is
saved (422) and, for a name the notice does not carry, recorded as a failed delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import string
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

# Every name a template may use: the notice's own, and the facts of the triggers that carry them.
COMMON_FIELDS = ("title", "summary", "severity", "trigger", "company", "at", "notice_id")
FACT_FIELDS = (
    "incident_id",
    "incident_name",
    "priority",
    "step",
    "deadline",
    "lead_minutes",
    "offense_id",
    "offense_description",
    "integration_id",
    "integration",
    "resource",
    "polls",
    "error",
    "eps",
    "contracted_eps",
    "domain_id",
    "ticket_id",
    "ticket_subject",
)
TEMPLATE_FIELDS = frozenset(COMMON_FIELDS + FACT_FIELDS)

DEFAULT_SUBJECT = "[SOC ${severity}] ${title}"
DEFAULT_TEXT = "${title}\n\n${summary}\n\nCompany: ${company}\nWhen: ${at}\nNotice: ${notice_id}\n"
DEFAULT_HTML = (
    "<html><body><h2>${title}</h2><p>${summary}</p>"
    "<p>Company: ${company}<br>When: ${at}<br>Notice: ${notice_id}</p></body></html>"
)


class TemplateError(ValueError):
    """A template that cannot be rendered (bad placeholder, unknown or missing name)."""


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot be used, or None."""
    t = string.Template(template)
    if not t.is_valid():
        return "invalid placeholder (use ${name}; write $$ for a dollar sign)"
    unknown = sorted(set(t.get_identifiers()) - TEMPLATE_FIELDS)
    if unknown:
        return f"unknown name(s) {', '.join(unknown)}; known: {', '.join(sorted(TEMPLATE_FIELDS))}"
    return None


@dataclass(frozen=True)
class Notice:
    id: int
    trigger: str
    severity: str
    title: str
    summary: str
    company: str
    at: datetime
    facts: dict[str, Any]

    def fields(self) -> dict[str, str]:
        values = {k: "" if v is None else str(v) for k, v in self.facts.items()}
        values.update(
            title=self.title,
            summary=self.summary,
            severity=self.severity,
            trigger=self.trigger,
            company=self.company,
            at=self.at.isoformat(),
            notice_id=str(self.id),
        )
        return values

    def body(self) -> dict[str, Any]:
        """The notice as JSON (webhooks, in-app)."""
        return {
            "id": self.id,
            "trigger": self.trigger,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "company": self.company,
            "at": self.at.isoformat(),
            "facts": self.facts,
        }


def render(template: str, values: dict[str, str], *, escape: bool = False) -> str:
    problem = template_problem(template)
    if problem:
        raise TemplateError(problem)
    if escape:
        values = {k: html.escape(v) for k, v in values.items()}
    try:
        return string.Template(template).substitute(values)
    except KeyError as exc:
        raise TemplateError(f"this notice has no {exc.args[0]}") from None


def email_message(notice: Notice, config: dict[str, Any]) -> EmailMessage:
    """A multipart/alternative message (plain text and HTML) from the channel's templates."""
    values = notice.fields()
    subject = render(config.get("subject_template") or DEFAULT_SUBJECT, values)
    msg = EmailMessage()
    msg["Subject"] = re.sub(r"[\r\n]+", " ", subject)[:250]
    msg["From"] = config["sender"]
    msg["To"] = ", ".join(config["recipients"])
    msg["Date"] = format_datetime(notice.at)
    msg["Message-ID"] = make_msgid(domain="soc-portal")
    msg["X-SOC-Notice"] = str(notice.id)
    msg.set_content(render(config.get("text_template") or DEFAULT_TEXT, values))
    msg.add_alternative(
        render(config.get("html_template") or DEFAULT_HTML, values, escape=True), subtype="html"
    )
    return msg


# --- webhooks ----------------------------------------------------------------------------------------
SIGNATURE_HEADER = "X-SOC-Signature"
TIMESTAMP_HEADER = "X-SOC-Timestamp"
DELIVERY_HEADER = "X-SOC-Delivery"
REPLAY_TOLERANCE_SECONDS = 300


def webhook_body(notice: Notice, delivery_id: int) -> bytes:
    return json.dumps(
        {"type": "soc.notification", "delivery_id": delivery_id, "notice": notice.body()},
        separators=(",", ":"),
        default=str,
    ).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp is signed with the
    body, so a captured request cannot be replayed later with a fresh timestamp."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, header: str, body: bytes, now: float, tolerance: int = REPLAY_TOLERANCE_SECONDS
) -> bool:
    """What a receiver checks: the signature over the timestamp and body, and a timestamp within
    ``tolerance`` seconds of its own clock."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


_SLACK_SEVERITY = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
}
_TEAMS_COLOUR = {"critical": "Attention", "high": "Warning", "medium": "Accent"}


def slack_escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>`` would ping everyone): vendor text
    goes in escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(notice: Notice) -> dict[str, Any]:
    """Slack incoming-webhook payload: ``text`` (the notification's fallback) and Block Kit blocks."""
    icon = _SLACK_SEVERITY.get(notice.severity, ":white_circle:")
    return {
        "text": slack_escape(f"{notice.title} ({notice.severity})"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{icon} *{notice.severity}* · {slack_escape(notice.company)}",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(notice.summary)[:2900]}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"notice {notice.id} · {notice.at.isoformat()}"}],
            },
        ],
    }


def teams_message(notice: Notice) -> dict[str, Any]:
    """Microsoft Teams incoming-webhook (Workflows) payload: a message with one Adaptive Card."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": notice.title,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                            "color": _TEAMS_COLOUR.get(notice.severity, "Default"),
                        },
                        {"type": "TextBlock", "text": notice.summary, "wrap": True},
                        {
                            "type": "FactSet",
                            "facts": [
                                {"title": "Severity", "value": notice.severity},
                                {"title": "Company", "value": notice.company},
                                {"title": "When", "value": notice.at.isoformat()},
                            ],
                        },
                    ],
                },
            }
        ],
    }
