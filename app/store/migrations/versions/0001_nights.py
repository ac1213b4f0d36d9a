"""Movie nights: nights, their members, the members' ratings, films set aside, starts counted.

Revision ID: 0001_nights
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_nights"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the nights tables."""
    op.create_table(
        "nights",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("picked", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_nights"),
    )
    op.create_index("ix_nights_expires_at", "nights", ["expires_at"])
    op.create_table(
        "members",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("night_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["night_id"], ["nights.id"], name="fk_members_night_id_nights", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
    )
    op.create_index("ix_members_night_position", "members", ["night_id", "position"], unique=True)
    op.create_table(
        "member_ratings",
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name="fk_member_ratings_member_id_members",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "movie_id", name="pk_member_ratings"),
    )
    op.create_table(
        "set_aside",
        sa.Column("night_id", sa.String(32), nullable=False),
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["night_id"], ["nights.id"], name="fk_set_aside_night_id_nights", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("night_id", "movie_id", name="pk_set_aside"),
    )
    op.create_table(
        "night_starts",
        sa.Column("client_sha256", sa.String(64), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_sha256", "hour", name="pk_night_starts"),
    )


def downgrade() -> None:
    """Drop the nights tables."""
    for table in ("night_starts", "set_aside", "member_ratings", "members", "nights"):
        op.drop_table(table)
