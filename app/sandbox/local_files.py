"""File operations of the local backend, confined to a sandbox's work directory on this machine.

Paths are resolved on the host (symlinks included) before anything is read or written, so no
path, `..` or planted link leads a file operation out of the work directory. Failures come
back per file as deepagents' error codes, like every backend's.
"""

from __future__ import annotations

from pathlib import Path

from deepagents.backends.protocol import FileDownloadResponse, FileUploadResponse

from app.sandbox.base import OUTSIDE_WORK_DIR, PathOutsideSandbox


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


def _file_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file_not_found"
    if isinstance(exc, IsADirectoryError):
        return "is_directory"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    return exc.strerror or type(exc).__name__
