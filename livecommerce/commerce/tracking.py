"""Parcels: the check of a carrier and tracking number, and the tracking CSV file an operator
imports (`order_id,carrier,tracking_number`), parsed row by row. Pure: no I/O."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from livecommerce.errors import AppError

MAX_ROWS = 2000
MAX_CARRIER = 64
TRACKING_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{3,63}")
COLUMNS = ("order_id", "carrier", "tracking_number")


def check_parcel(carrier: str, tracking_number: str) -> tuple[str, str]:
    """The carrier and tracking number, trimmed; `invalid` naming the field that is not usable."""
    carrier = carrier.strip()
    tracking_number = tracking_number.strip()
    if not 1 <= len(carrier) <= MAX_CARRIER or not carrier.isprintable():
        raise AppError("invalid", f"carrier: 1 to {MAX_CARRIER} printable characters")
    if not TRACKING_PATTERN.fullmatch(tracking_number):
        raise AppError("invalid", "tracking_number: 4 to 64 characters from A-Z a-z 0-9 and -")
    return carrier, tracking_number


@dataclass(frozen=True, slots=True)
class TrackingRow:
    """One data row of the file: its line number and what it says, or why it cannot be used."""

    line: int
    order_id: int | None
    carrier: str
    tracking_number: str
    error: AppError | None = None


def parse_tracking_csv(data: bytes) -> list[TrackingRow]:
    """The file's data rows, each checked on its own; the whole file is refused (`invalid`) only
    when it cannot be read as such a file at all (not UTF-8, no header, too many rows)."""
    try:
        content = data.decode("utf-8-sig")  # spreadsheets often start the file with a BOM
    except UnicodeDecodeError:
        raise AppError("invalid", "the file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    header = [cell.strip().lower() for cell in next(reader, [])]
    if any(column not in header for column in COLUMNS):
        raise AppError("invalid", f"the first line names the columns: {','.join(COLUMNS)}")
    at = {column: header.index(column) for column in COLUMNS}
    rows: list[TrackingRow] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) == MAX_ROWS:
            raise AppError("invalid", f"at most {MAX_ROWS} rows per file")
        rows.append(_row(reader.line_num, cells, at))
    return rows


def _row(line: int, cells: list[str], at: dict[str, int]) -> TrackingRow:
    def cell(column: str) -> str:
        index = at[column]
        return cells[index] if index < len(cells) else ""

    raw_id = cell("order_id").strip()
    order_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() and 0 < len(raw_id) <= 18 else None
    try:
        if order_id is None or order_id == 0:
            raise AppError("invalid", "order_id: a whole number above 0")
        carrier, tracking_number = check_parcel(cell("carrier"), cell("tracking_number"))
    except AppError as exc:
        return TrackingRow(line, order_id, cell("carrier"), cell("tracking_number"), exc)
    return TrackingRow(line, order_id, carrier, tracking_number)
