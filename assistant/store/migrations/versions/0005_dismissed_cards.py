"""Help cards a driver dismissed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dismissed_cards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("driver_id", sa.String(length=128), nullable=False),
        sa.Column("card_id", sa.String(length=160), nullable=False),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("driver_id", "card_id", name="uq_dismissed_cards_driver_card"),
    )
    with op.batch_alter_table("dismissed_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dismissed_cards_driver_id"), ["driver_id"], unique=False)


def downgrade() -> None:
    op.drop_table("dismissed_cards")
