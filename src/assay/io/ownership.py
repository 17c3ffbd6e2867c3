"""Folders assay owns: the marker, the refusals, the one-writer lock, and deletion of its own names.

assay deletes or overwrites only what it wrote. Every folder it writes (a run's output,
prepared shards, a training run, a model folder) gets a marker file before anything else,
and assay deletes only inside a folder that carries its marker of the same kind, and only
the names its own layout writes there. Before any work, :func:`claim_folder` refuses an
output that is the file system's root, the home folder, the current folder or one of its
ancestors, an existing file, a folder that holds files but no marker, or a path equal to,
inside or containing one of the inputs.

One writer per folder: :func:`claim_folder` takes an exclusive lock (``flock`` on a file
in the folder) held until the work ends. A second run into the same folder is refused at
once with the holder's PID and host; the kernel drops the lock of a killed run, so the
lock file it leaves behind is simply taken over. Folders on remote file systems (any fsspec URL that
is not local) get the marker and the refusals but no lock: their stores have no lock that
works across machines, so one writer per output is the user's to keep there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fsspec
import orjson

from assay.errors import AssayError
from assay.io.writers import write_json

# {"written_by": "assay", "kind": ...}: no date, so two runs' outputs stay byte-identical.
MARKER = ".assay-output"
LOCK = ".assay-lock"  # the flock file; holds the holder's {"pid", "host", "since"}
_OWN_FILES = frozenset({MARKER, LOCK, f".{MARKER}.tmp"})


class OutputError(AssayError):
    """An output assay refuses to write into; nothing was touched."""


class LockedError(OutputError):
    """Another run holds the output's lock."""


def is_local(url: str) -> bool:
    protocol = fsspec.core.split_protocol(url)[0]
    return protocol in (None, "file", "local")


def _real(url: str) -> str:
    """An absolute, symlink-free local path, or the URL itself for remote stores."""
    if is_local(url):
        return os.path.realpath(fsspec.core.split_protocol(url)[1])
    return url.rstrip("/")


def _relation(output: str, other: str) -> str | None:
    if output == other:
        return "is"
    if other.startswith(output.rstrip("/") + "/"):
        return "contains"
    if output.startswith(other.rstrip("/") + "/"):
        return "is inside"
    return None


def check_place(url: str, inputs: Iterable[str] = ()) -> str:
    """Refuse a place no output may be (see the module's docstring); return its real path."""
    real = _real(url)
    if is_local(url):
        home = os.path.realpath(os.path.expanduser("~"))
        cwd = os.path.realpath(os.getcwd())
        if real == "/":
            raise OutputError("the output is the root of the file system; name a folder of its own",
                              file=url)
        if real == home:
            raise OutputError("the output is your home folder; name a folder of its own inside it",
                              file=url)
        if real == cwd or cwd.startswith(real.rstrip("/") + "/"):
            raise OutputError("the output is the current folder or one that contains it; name a "
                              "folder of its own", file=url)
    for source in inputs:
        relation = _relation(real, _real(source))
        if relation is not None:
            raise OutputError(f"the output {relation} the input {source}; write somewhere else",
                              file=url)
    return real


def read_marker(url: str) -> dict[str, Any] | None:
    """The marker of the folder at ``url``, or None if it has none."""
    fs, path = fsspec.core.url_to_fs(url)
    try:
        with fs.open(f"{path.rstrip('/')}/{MARKER}", "rb") as f:
            data = orjson.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise OutputError(f"its {MARKER} marker cannot be read ({exc}); remove the folder by hand "
                          "if it is yours", file=url) from None
    if not isinstance(data, dict) or data.get("written_by") != "assay":
        raise OutputError(f"its {MARKER} file was not written by assay", file=url)
    return data


def check_folder(url: str, kind: str, inputs: Iterable[str] = ()) -> None:
    """Everything :func:`claim_folder` refuses, without writing anything (for dry runs)."""
    check_place(url, inputs)
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return
    if not fs.isdir(path):
        raise OutputError("the output is an existing file, not a folder", file=url)
    marker = read_marker(url)
    if marker is None:
        if _entries(fs, path) - _OWN_FILES:
            raise OutputError(
                f"the folder holds files assay did not write (it has no {MARKER} marker); "
                "choose a new or empty folder", file=url)
    elif marker.get("kind") != kind:
        raise OutputError(f"the folder holds an assay {marker.get('kind')} output, not a {kind} "
                          "output; choose another folder", file=url)


def _entries(fs: fsspec.AbstractFileSystem, path: str) -> set[str]:
    """The names directly inside a folder."""
    return {name.rstrip("/").rsplit("/", 1)[-1] for name in fs.ls(path, detail=False)}


class OwnedFolder:
    """A folder assay marked as its own, locked for this process until :meth:`release`."""

    def __init__(self, url: str, kind: str, lock: _Lock | None, created: bool) -> None:
        self.url, self.kind, self._lock = url.rstrip("/") or url, kind, lock
        self.created = created  # this process made the folder
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.local = is_local(self.url)

    def clear(self, names: Iterable[str]) -> None:
        """Delete the given entries of this folder (assay's own names), keeping its marker.
        A symbolic link among them is removed as a link: what it points to is not assay's."""
        for name in names:
            if "/" in name or name in _OWN_FILES or name in ("", ".", ".."):
                raise ValueError(f"not a name of the folder's own: {name!r}")
            target = f"{self.path}/{name}"
            if self.local and os.path.islink(target):
                os.unlink(target)
            elif self.fs.exists(target):
                self.fs.rm(target, recursive=True)

    def remove_partial(self, names: Iterable[str]) -> None:
        """Delete temporary files (``.NAME.tmp``) a killed run left under the given entries,
        never following a symbolic link out of the folder."""
        for name in names:
            top = f"{self.path}/{name}"
            if self.local:
                walked = [] if os.path.islink(top) else os.walk(top)  # os.walk follows a linked top
                found = [os.path.join(folder, f) for folder, _, files in walked for f in files]
            else:
                found = self.fs.find(top) if self.fs.isdir(top) else []
            for path in found:
                base = path.rsplit("/", 1)[-1]
                if base.startswith(".") and base.endswith(".tmp"):
                    self.fs.rm(path)

    def discard(self) -> None:
        """Remove the folder again if this process created it and it holds nothing else
        than the marker (a run that stopped before writing anything); release the lock."""
        names = _entries(self.fs, self.path)
        unused = self.created and not names - _OWN_FILES
        if unused:
            for name in names & {MARKER, f".{MARKER}.tmp"}:
                self.fs.rm(f"{self.path}/{name}")
        self.release()
        if unused:
            with contextlib.suppress(OSError):  # another run may have claimed it meanwhile
                self.fs.rmdir(self.path)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> OwnedFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_folder(url: str, kind: str, *, inputs: Iterable[str] = (),
                 notice: Callable[[str], None] | None = None) -> OwnedFolder:
    """Check ``url`` as an output of ``kind``, create it, lock it and mark it as assay's.

    Raises :class:`OutputError` (nothing written) for a place no output may be, and
    :class:`LockedError` when another process holds the lock.
    """
    inputs = list(inputs)
    check_folder(url, kind, inputs)
    fs, path = fsspec.core.url_to_fs(url)
    created = not fs.exists(path)
    fs.makedirs(path, exist_ok=True)
    lock = _Lock.acquire(path, url, notice) if is_local(url) else None
    try:
        if read_marker(url) is None:
            check_folder(url, kind, inputs)  # what another process may have written meanwhile
            _write_marker(url, kind)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return OwnedFolder(url, kind, lock, created)


def _write_marker(url: str, kind: str) -> None:
    write_json(f"{url.rstrip('/')}/{MARKER}", {"written_by": "assay", "kind": kind})


class _Lock:
    """An exclusive ``flock`` on ``FOLDER/.assay-lock``, released by the kernel if we die.

    The file is removed on release. Because a file can be removed between another
    process's ``open`` and its ``flock``, a lock counts only when the locked file is still
    the one at the path; otherwise the attempt starts over.
    """

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def acquire(cls, folder: str, url: str, notice: Callable[[str], None] | None) -> _Lock:
        path = os.path.join(folder, LOCK)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                for _ in range(20):  # the holder writes who it is just after it locks: wait for it
                    if holder:
                        break
                    time.sleep(0.05)
                    holder = _holder(fd)
                os.close(fd)
                who = (f"PID {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                       if holder else "another process")
                raise LockedError(f"another assay run is writing this output ({who}); wait for it to "
                                  "finish or choose another output", file=url) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed it as we opened it: try the new one
        previous = _holder(fd)
        host = socket.gethostname()
        if previous and notice is not None:
            notice(f"{url}: took over the lock left by PID {previous.get('pid')} on "
                   f"{previous.get('host')}, a run that ended without finishing (killed or crashed); "
                   "its finished work is kept")
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps({"pid": os.getpid(), "host": host,
                                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}), 0)
        return cls(fd, path)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still locked: nobody can hold it meanwhile
        os.close(self.fd)  # closing drops the flock


def _same_file(fd: int, path: str) -> bool:
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(fd: int) -> dict[str, Any] | None:
    try:
        data = orjson.loads(os.pread(fd, 4096, 0))
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------- single files

WRITTEN_BY = "assay"  # a JSON file's "written_by" value, a PNG's "Software" text chunk
GENERATOR_META = f'<meta name="generator" content="{WRITTEN_BY}">'  # in an HTML page's head
YAML_MARK = f"# written_by: {WRITTEN_BY}\n"  # the first line of a YAML file assay writes


def check_file_output(path: Path) -> None:
    """Refuse to write the file ``path`` over anything assay did not write (a JSON file
    with ``"written_by": "assay"``, a PNG whose Software is assay, an HTML page whose
    generator is assay, a YAML file whose first line is :data:`YAML_MARK`), over a folder,
    or into a folder that does not exist."""
    if path.is_dir():
        raise OutputError("is a folder; give a file name", file=str(path))
    if not path.parent.is_dir():
        raise OutputError(f"the folder {path.parent} does not exist", file=str(path))
    if path.exists() and not _written_by_assay(path):
        raise OutputError("exists and was not written by assay; remove it or choose another name",
                          file=str(path))


def _written_by_assay(path: Path) -> bool:
    try:
        head = path.read_bytes()
    except OSError:
        return False
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_text(head).get("Software") == WRITTEN_BY
    if head.startswith(b"<!doctype html>"):
        return GENERATOR_META.encode() in head[:2048]
    if head.startswith(b"#"):
        return head.startswith(YAML_MARK.encode())
    try:
        data = orjson.loads(head)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("written_by") == WRITTEN_BY


def _png_text(data: bytes) -> dict[str, str]:
    """The ``tEXt`` chunks of a PNG file: keyword -> text."""
    texts, at = {}, 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at: at + 4], "big")
        kind, body = data[at + 4: at + 8], data[at + 8: at + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        at += 12 + length
    return texts
