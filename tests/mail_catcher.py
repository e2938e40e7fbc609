"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts, for tests of
the mail the server sends; it can be told to refuse for a while, and to answer slowly."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Caught:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def text(self) -> str:
        """The plain-text part as a mail reader shows it (line ends as \\n, not the wire's CRLF)."""
        return self.message.get_body(("plain",)).get_content().replace("\r\n", "\n")

    def html(self) -> str:
        return self.message.get_body(("html",)).get_content().replace("\r\n", "\n")


class MailCatcher:
    """`start()` listens on 127.0.0.1:`port`; `caught` fills as messages are accepted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.caught: list[Caught] = []
        self.refuse_with: str | None = None
        """An SMTP answer (e.g. "451 4.3.0 try again later") given to DATA instead of accepting."""
        self.answer_delay = 0.0
        self.data_started = 0
        """How many messages the server began to receive (accepted or not)."""
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> MailCatcher:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_started += 1
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if self.refuse_with is not None:
            return self.refuse_with
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.caught.append(Caught(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"
