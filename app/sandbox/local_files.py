"""File operations of the local backend, confined to a sandbox's work directory on this machine.

Paths are resolved on the host (symlinks included) before anything is read or written, so no
path, `..` or planted link leads a file operation out of the work directory. Failures come
back per file as deepagents' error codes, like every backend's.

When the sandbox's commands run as another user (open-swe runs as root), the reading and
writing are done by that user, in the sandbox (`*_as`): code in the sandbox can swap a checked
directory for a link while a file operation runs, and root must never be the one who follows it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from deepagents.backends.protocol import FileDownloadResponse, FileUploadResponse

from app.sandbox.types import OUTSIDE_WORK_DIR, PathOutsideSandbox


def confine(work: Path, path: str) -> Path:
    """The real path for `path` (relative to `work`), refused when it leaves `work`."""
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else work / candidate).resolve()
    if resolved != work and work not in resolved.parents:
        raise PathOutsideSandbox(f"{path} is outside the sandbox work directory {work}")
    return resolved


def write_files(work: Path, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
    """Write each file, making its parent directories (only once the path is confined)."""
    responses = []
    for path, data in files:
        try:
            target = confine(work, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except PathOutsideSandbox:
            responses.append(FileUploadResponse(path=path, error=OUTSIDE_WORK_DIR))
        except OSError as exc:
            responses.append(FileUploadResponse(path=path, error=_file_error(exc)))
        else:
            responses.append(FileUploadResponse(path=path))
    return responses


def read_files(work: Path, paths: list[str]) -> list[FileDownloadResponse]:
    responses = []
    for path in paths:
        try:
            content = confine(work, path).read_bytes()
        except PathOutsideSandbox:
            responses.append(FileDownloadResponse(path=path, error=OUTSIDE_WORK_DIR))
        except OSError as exc:
            responses.append(FileDownloadResponse(path=path, error=_file_error(exc)))
        else:
            responses.append(FileDownloadResponse(path=path, content=content))
    return responses


# (script, resolved path, stdin) -> the finished `sh -c script sh path`, run as the sandbox user
Exchange = Callable[[str, Path, "bytes | None"], "subprocess.CompletedProcess[bytes]"]
_NOT_FOUND, _IS_DIRECTORY = 3, 4
_READ = '[ -e "$1" ] || exit 3; [ -d "$1" ] && exit 4; exec cat -- "$1"'
_WRITE = '[ -d "$1" ] && exit 4; mkdir -p -- "$(dirname -- "$1")" && exec cat > "$1"'


def read_files_as(work: Path, paths: list[str], exchange: Exchange) -> list[FileDownloadResponse]:
    responses = []
    for path in paths:
        try:
            target = confine(work, path)
        except PathOutsideSandbox:
            responses.append(FileDownloadResponse(path=path, error=OUTSIDE_WORK_DIR))
            continue
        done = exchange(_READ, target, None)
        if done.returncode == 0:
            responses.append(FileDownloadResponse(path=path, content=done.stdout))
        else:
            responses.append(FileDownloadResponse(path=path, error=_exchange_error(done)))
    return responses


def write_files_as(
    work: Path, files: list[tuple[str, bytes]], exchange: Exchange
) -> list[FileUploadResponse]:
    responses = []
    for path, data in files:
        try:
            target = confine(work, path)
        except PathOutsideSandbox:
            responses.append(FileUploadResponse(path=path, error=OUTSIDE_WORK_DIR))
            continue
        done = exchange(_WRITE, target, data)
        error = None if done.returncode == 0 else _exchange_error(done)
        responses.append(FileUploadResponse(path=path, error=error))
    return responses


def _exchange_error(done: subprocess.CompletedProcess[bytes]) -> str:
    if done.returncode == _NOT_FOUND:
        return "file_not_found"
    if done.returncode == _IS_DIRECTORY:
        return "is_directory"
    message = done.stderr.decode("utf-8", "replace").strip()
    if "Permission denied" in message:
        return "permission_denied"
    if "No such file" in message:
        return "file_not_found"
    return message.splitlines()[-1] if message else f"exit status {done.returncode}"


def _file_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file_not_found"
    if isinstance(exc, IsADirectoryError):
        return "is_directory"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    return exc.strerror or type(exc).__name__
