"""File transfer for one Daytona sandbox through the toolbox file API, kept inside work_dir.

Paths are checked as text first, then resolved inside the sandbox (`realpath`), so neither
`..` nor a symlink leads a file operation out of work_dir. Failures come back per file as
deepagents' error codes (see errors.file_error), never as one error for the whole batch.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Awaitable, Callable, Set
from typing import Protocol, TypeVar

from daytona import AsyncSandbox, DaytonaError, FileDownloadRequest, FileUpload

from app.sandbox.daytona.errors import file_error, status
from app.sandbox.types import OUTSIDE_WORK_DIR, SandboxError

T = TypeVar("T")
Located = tuple[str | None, str | None]  # (real path, None) or (None, error code)
Found = tuple[bytes | None, str | None]  # (content, None) or (None, error code)


class Toolbox(Protocol):
    """DaytonaSandbox.toolbox: one toolbox call, retried and recovered."""

    async def __call__(
        self, what: str, operation: Callable[[], Awaitable[T]], *, limit: float | None = None
    ) -> T: ...


def in_work_dir(work_dir: str, path: str) -> str:
    """`path` made absolute against work_dir and normalised (no symlinks resolved)."""
    return posixpath.normpath(posixpath.join(work_dir, path))


class DaytonaFiles:
    def __init__(
        self, sdk: AsyncSandbox, toolbox: Toolbox, *, transfer_limit: float, secrets: Set[str]
    ) -> None:
        self._sdk = sdk
        self._toolbox = toolbox
        self._limit = transfer_limit
        self._secrets = secrets  # the sandbox's own set: secrets added later are redacted too

    async def upload(self, work_dir: str, files: list[tuple[str, bytes]]) -> dict[int, str]:
        """Upload every file that may be written; the errors by index in `files`."""
        located = await self._locate(work_dir, [path for path, _ in files])
        errors = {i: error for i, (_, error) in enumerate(located) if error is not None}
        pending = [
            (i, FileUpload(source=data, destination=target))
            for i, ((target, _), (_, data)) in enumerate(zip(located, files, strict=True))
            if target is not None
        ]
        if pending:
            errors.update(await self._upload(pending))
        return errors

    async def download(self, work_dir: str, paths: list[str]) -> list[Found]:
        located = await self._locate(work_dir, paths)
        targets = sorted({target for target, _ in located if target is not None})
        results = await self._download(targets) if targets else {}
        return [(None, error) if target is None else results[target] for target, error in located]

    async def _locate(self, work_dir: str, paths: list[str]) -> list[Located]:
        """(real path, None) for each path inside work_dir, else (None, error).

        Symlinks are resolved inside the sandbox, so a link cannot lead a file operation out
        of work_dir (commands are not confined: the sandbox itself is the boundary).
        """
        located: list[Located] = []
        for path in paths:
            if not path or any(c in path for c in "\0\n") or path.endswith("/"):
                located.append((None, "invalid_path"))
            elif not _within(work_dir, in_work_dir(work_dir, path)):
                located.append((None, OUTSIDE_WORK_DIR))
            else:
                located.append((in_work_dir(work_dir, path), None))
        wanted = [target for target, _ in located if target is not None]
        if not wanted:
            return located
        command = shlex.join(["realpath", "-m", "--", work_dir, *wanted])
        process = self._sdk.process
        answer = await self._toolbox("resolving paths", lambda: process.exec(command, timeout=60))
        lines = answer.result.split("\n")
        if answer.exit_code != 0 or len(lines) < len(wanted) + 1:
            raise SandboxError(f"cannot resolve paths in the sandbox: {answer.result.strip()}")
        root, real = lines[0], iter(lines[1:])
        return [
            (None, error) if target is None else _confined(root, next(real))
            for target, error in located
        ]

    async def _upload(self, pending: list[tuple[int, FileUpload]]) -> dict[int, str]:
        fs = self._sdk.fs
        try:
            await self._toolbox(
                "uploading files",
                lambda: fs.upload_files([u for _, u in pending]),
                limit=self._limit,
            )
            return {}
        except DaytonaError as exc:
            if status(exc) != 400:
                raise
            if len(pending) == 1:
                return {pending[0][0]: file_error(exc.message, None, self._secrets)}
        # The bulk call fails as a whole: upload one by one to tell which files failed.
        errors: dict[int, str] = {}
        for index, upload in pending:
            errors.update(await self._upload([(index, upload)]))
        return errors

    async def _download(self, targets: list[str]) -> dict[str, Found]:
        fs = self._sdk.fs
        requests = [FileDownloadRequest(source=t) for t in targets]
        answers = await self._toolbox(
            "downloading files", lambda: fs.download_files(requests), limit=self._limit
        )
        results: dict[str, Found] = {}
        for answer in answers:
            if answer.error is None and isinstance(answer.result, bytes):
                results[answer.source] = (answer.result, None)
            else:
                details = answer.error_details
                code = details.status_code if details else None
                message = answer.error or "no data received"
                results[answer.source] = (None, file_error(message, code, self._secrets))
        return results


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _confined(root: str, real: str) -> Located:
    return (real, None) if _within(root, real) else (None, OUTSIDE_WORK_DIR)
