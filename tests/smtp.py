"""A real SMTP server on loopback for e-mail tests (aiosmtpd), and the messages it took."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from esafety.config import Settings, SmtpSettings
from esafety.installation import Installation
from tests.pg import free_port


@dataclass
class Received:
    """One message as the server took it."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""

    @property
    def content(self) -> str:
        """What the message says: subject, text and HTML (not the addresses)."""
        return "\n".join([self.subject, self.text, self.html])

    @property
    def whole(self) -> str:
        """Everything: headers and every part, decoded (for "never carries X" checks)."""
        return self.message.as_string() + self.text + self.html


@dataclass
class Inbox:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[Inbox]:
    """An SMTP server on 127.0.0.1 (a free port unless given), stopped on leaving."""
    inbox = Inbox("127.0.0.1", port or free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def use_smtp(inst: Installation, port: int, **more: Any) -> Settings:
    """Point the installation's e-mail at 127.0.0.1:port."""
    smtp = SmtpSettings(host="127.0.0.1", port=port, sender="esafety@oak.example", **more)
    inst.settings = inst.settings.model_copy(update={"smtp": smtp})
    return inst.settings
