"""Suite-wide fixtures.

When the suite runs as root, open-swe runs sandbox commands as an unprivileged user (see
app/sandbox/local_user.py), which must be able to reach the sandboxes' directory, as a real
deployment's data directory must be. pytest keeps its temporary directories private (every
session, its own or a concurrent one, resets /tmp/pytest-of-root to 0700), so as root each
test's tmp_path is a directory of its own under /tmp/open-swe-tests, which others may pass
through but not list, removed after the test.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT_TMP = Path(tempfile.gettempdir()) / "open-swe-tests"


@pytest.fixture
def tmp_path(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    if os.geteuid() != 0:
        yield tmp_path
        return
    _ROOT_TMP.mkdir(mode=0o711, exist_ok=True)
    if _ROOT_TMP.stat().st_uid != 0 or _ROOT_TMP.is_symlink():
        raise RuntimeError(f"{_ROOT_TMP} is not root's: remove it")
    _ROOT_TMP.chmod(0o711)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:30]
    path = Path(tempfile.mkdtemp(dir=_ROOT_TMP, prefix=f"{name}-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)
