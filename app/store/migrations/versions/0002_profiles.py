"""Saved profiles: a profile per private link (its token's SHA-256) and its ratings.

Revision ID: 0002_profiles
Revises: 0001_nights
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_profiles"
down_revision = "0001_nights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the profiles tables."""
    op.create_table(
        "profiles",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_profiles"),
    )
    op.create_index("ix_profiles_used_at", "profiles", ["used_at"])
    op.create_table(
        "profile_ratings",
        sa.Column("profile_sha256", sa.String(64), nullable=False),
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_sha256"],
            ["profiles.token_sha256"],
            name="fk_profile_ratings_profile_sha256_profiles",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_sha256", "movie_id", name="pk_profile_ratings"),
    )


def downgrade() -> None:
    """Drop the profiles tables."""
    for table in ("profile_ratings", "profiles"):
        op.drop_table(table)
