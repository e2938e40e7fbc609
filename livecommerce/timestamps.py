"""Moments as the HTTP API and room events write them: ISO 8601, or null where there is none."""

from __future__ import annotations

from datetime import datetime


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
