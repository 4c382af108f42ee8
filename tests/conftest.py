"""Suite-wide fixtures.

When the suite runs as root, open-swe runs sandbox commands as an unprivileged user (see
app/sandbox/local_user.py), which must be able to reach the sandboxes' directory, as a real
deployment's data directory must be. pytest makes its temporary directories private (0700), so
each test's tmp_path and its parents are made searchable (never listable) by others.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        top = Path(tempfile.gettempdir()).resolve()
        for directory in (tmp_path, *tmp_path.parents):
            if directory == top or top not in directory.parents:
                break
            directory.chmod(directory.stat().st_mode | 0o011)
    return tmp_path
