"""Skip a test whose service (PostgreSQL, bubblewrap) is missing on a developer's machine,
but fail it in CI (`CI=true`), where .ci/run provides the service: a green CI must have run it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI provides it: see .ci/run)", pytrace=False)
    pytest.skip(reason)
