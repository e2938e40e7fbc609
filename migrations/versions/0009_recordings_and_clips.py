"""recordings and clips: each stream session's CMAF recording and the moments marked in it

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("stream_session_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="recording", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("segments", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "state IN ('recording', 'complete', 'failed')", name=op.f("ck_recordings_state_known")
        ),
        sa.ForeignKeyConstraint(
            ["stream_session_id"],
            ["stream_sessions.id"],
            name=op.f("fk_recordings_stream_session_id_stream_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_recordings_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("stream_session_id", name=op.f("pk_recordings")),
    )
    op.create_index("ix_recordings_room_id", "recordings", ["room_id"], unique=False)
    op.create_index("ix_recordings_started_at", "recordings", ["started_at"], unique=False)
    op.create_table(
        "clips",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("stream_session_id", sa.BigInteger(), nullable=False),
        sa.Column("offset_seconds", sa.Float(), nullable=False),
        sa.Column("title", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("offset_seconds >= 0", name=op.f("ck_clips_offset_not_negative")),
        sa.ForeignKeyConstraint(
            ["stream_session_id"],
            ["recordings.stream_session_id"],
            name=op.f("fk_clips_stream_session_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_clips_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clips")),
    )
    op.create_index("ix_clips_stream_session_id", "clips", ["stream_session_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_clips_stream_session_id", table_name="clips")
    op.drop_table("clips")
    op.drop_index("ix_recordings_started_at", table_name="recordings")
    op.drop_index("ix_recordings_room_id", table_name="recordings")
    op.drop_table("recordings")
