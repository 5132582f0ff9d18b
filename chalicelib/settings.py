"""Configuration, read once from the environment on first use (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    table_prefix: str
    dynamodb_endpoint: str | None
    s3_endpoint: str | None
    sqs_endpoint: str | None
    imports_bucket: str
    operator_key: str
    max_body_bytes: int = 1_048_576

    @property
    def records_table(self) -> str:
        return f"{self.table_prefix}-records"

    @property
    def memberships_table(self) -> str:
        return f"{self.table_prefix}-memberships"

    @property
    def control_table(self) -> str:
        return f"{self.table_prefix}-control"

    @property
    def idempotency_table(self) -> str:
        return f"{self.table_prefix}-idempotency"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def settings_from_env() -> Settings:
    return Settings(
        stage=_env("SEGMENTS_STAGE", "local") or "local",
        region=_env("AWS_DEFAULT_REGION", "us-east-1") or "us-east-1",
        table_prefix=_env("SEGMENTS_TABLE_PREFIX", "segments") or "segments",
        dynamodb_endpoint=_env("SEGMENTS_DYNAMODB_ENDPOINT"),
        s3_endpoint=_env("SEGMENTS_S3_ENDPOINT"),
        sqs_endpoint=_env("SEGMENTS_SQS_ENDPOINT"),
        imports_bucket=_env("SEGMENTS_IMPORTS_BUCKET", "segments-imports") or "segments-imports",
        operator_key=_env("SEGMENTS_OPERATOR_KEY", "") or "",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()


def reset_settings() -> None:
    """Forget cached settings (tests and the local runtime change the environment)."""
    get_settings.cache_clear()
