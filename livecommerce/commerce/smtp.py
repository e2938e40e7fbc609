"""The mail transport: one connection to the server SMTP_URL names (`Settings.smtp_target`)
that sends finished messages (aiosmtplib). `smtps://` speaks TLS from the start; `smtp://`
upgrades with STARTTLS whenever the server offers it.
"""

from __future__ import annotations

import aiosmtplib

from livecommerce.config import SmtpTarget

SMTP_TIMEOUT_S = 30.0


class Undeliverable(Exception):
    """The server refused the message for good (a 5xx answer to its recipient or content): trying
    again would get the same answer."""


class SmtpConnection:
    """One connection to the server, opened on the first message and kept for the next ones;
    closed by `close()` (and dropped after a failure, so the next message opens a fresh one)."""

    def __init__(self, target: SmtpTarget, *, timeout: float = SMTP_TIMEOUT_S) -> None:
        self._target = target
        self._timeout = timeout
        self._client: aiosmtplib.SMTP | None = None

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        """Hand one finished message to the server; `Undeliverable` when it is refused for good,
        any other exception when it may go through later."""
        try:
            client = await self._connected()
            await client.sendmail(sender, [recipient], message)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            await self.close()
            if _permanent(exc):
                raise Undeliverable(describe_failure(exc)) from None
            raise
        except Exception:
            await self.close()
            raise

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is None or not self._client.is_connected:
            target = self._target
            client = aiosmtplib.SMTP(
                hostname=target.host,
                port=target.port,
                use_tls=target.implicit_tls,
                # None: STARTTLS when the server offers it
                start_tls=False if target.implicit_tls else None,
                username=target.username,
                password=target.password,
                timeout=self._timeout,
            )
            await client.connect()
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _permanent(exc: Exception) -> bool:
    """A refusal of this message or its recipient (5xx), not of the server's state or our login."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(refusal.code >= 500 for refusal in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return exc.code >= 500
    return False


def describe_failure(exc: Exception) -> str:
    """One line for the outbox's `last_error`: the server's code and words, or the failure's kind."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        said = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        said = f"{exc.code} {exc.message}"
    else:
        said = f"{type(exc).__name__}: {exc}"
    return said[:500]
