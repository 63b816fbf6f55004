"""Files that appear under their name only when complete, created without following links and without
racing another run: the one home for every writer (run outputs, model cards, checkpoints).

A file for ``DIR/STEM.SUFFIX`` is written as ``DIR/.STEM.XXXXXXXX.partial.SUFFIX`` (a folder for
``DIR/NAME``: ``DIR/.NAME.XXXXXXXX.partial``), ``XXXXXXXX`` being 8 random characters. It is created
exclusively in the target's own folder (``tempfile.mkstemp``/``mkdtemp``: O_CREAT|O_EXCL|O_NOFOLLOW,
mode 0600), so a file or link planted at any name, old or new, is never opened or followed, and it is
renamed onto the target only by ``commit()`` (same folder: an atomic rename), with the permissions a
plain ``open(..., "w")`` would have given. ``discard()`` removes it.

While a partial is written, its writer holds an exclusive ``flock`` on it; the kernel drops the lock
when the process ends, however it ends. That is how a run tells a live partial (another run writing the
same target) from a stale one (left by a run that was killed): ``siblings``.

A partial's own name is always printable UTF-8 text: STEM and SUFFIX as ``runtime.shown.shown_name``
gives them (a byte that is not UTF-8 as ``\\xNN``), so OpenCV, which takes names as UTF-8 text, can write
it (``runtime.cv_path``) and a summary can name it; the target keeps the bytes it was given.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from runtime.errors import OutputError
from runtime.shown import quoted, shown_name

try:
    import fcntl
except ImportError:  # Windows: no flock; every partial then looks stale, and each run commits atomically
    fcntl = None  # type: ignore[assignment]

RANDOM_CHARS = "[a-z0-9_]{8}"  # tempfile's names: 8 characters of abcdefghijklmnopqrstuvwxyz0123456789_
STALE_AGE_S = 10.0  # an unlocked partial younger than this may be a writer between create and lock


def _name_parts(target: Path, folder: bool) -> tuple[str, str]:
    """What a partial's name holds around ``.XXXXXXXX.partial``: STEM and SUFFIX (a folder: NAME and ""), as text."""
    stem, suffix = (target.stem, target.suffix) if target.suffix and not folder else (target.name, "")
    return shown_name(stem), shown_name(suffix)


def partial_pattern(target: str | os.PathLike, folder: bool = False) -> re.Pattern[str]:
    """Names of the partials for ``target`` (this version's, and ``.STEM.partial.SUFFIX`` of earlier ones)."""
    stem, suffix = _name_parts(Path(target), folder)
    return re.compile(rf"^\.{re.escape(stem)}\.(?:{RANDOM_CHARS}\.)?partial{re.escape(suffix)}$")


def partials(target: str | os.PathLike, folder: bool = False) -> list[Path]:
    """Every partial of ``target`` in its folder now (live or stale, any kind of entry), sorted by name."""
    target = Path(target)
    pattern = partial_pattern(target, folder)
    try:
        return sorted(target.parent / e.name for e in os.scandir(target.parent) if pattern.match(e.name))
    except OSError:
        return []


def _default_mode(folder: bool) -> int:
    """What ``open(..., "w")`` / ``mkdir`` would give under this process's umask (mkstemp gives 0600)."""
    umask = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:  # Linux: read without changing it (os.umask is process-wide)
            umask = next((int(line.split()[1], 8) for line in f if line.startswith("Umask:")), None)
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def _lock(fd: int, exclusive: bool) -> bool:
    """Try to lock ``fd`` without waiting; False when another open file holds a conflicting lock."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks: nothing to learn from it
        return True
    return True


def lock_state(path: str | os.PathLike) -> str | None:
    """"live" (a writer holds its lock), "stale" (nobody does), or None: not a plain file or folder (a link,
    a FIFO: never opened through), gone, or unreadable."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return None
        return "stale" if _lock(fd, exclusive=False) else "live"
    finally:
        os.close(fd)


@contextlib.contextmanager
def held_lock(path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing, left in place) for the block: one
    process at a time (the kernel drops the lock when the holder ends, however it ends).

    Raises:
        OutputError: another process holds it (``busy`` is the line), or the file cannot be created.
    """
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise OutputError(f"cannot create the lock file {quoted(path)}: {reason(e)}; check the folder is "
                          "writable") from e
    try:
        if not _lock(fd, exclusive=True):
            raise OutputError(busy)
        yield
    finally:
        os.close(fd)


def siblings(target: str | os.PathLike, own: str | os.PathLike | None = None,
             folder_target: bool = False) -> tuple[list[Path], list[Path]]:
    """The other partials of ``target`` (a folder when ``folder_target``) in its folder: (live, stale), sorted."""
    target = Path(target)
    folder = target.parent
    pattern = partial_pattern(target, folder_target)
    own_name = Path(own).name if own is not None else None
    live: list[Path] = []
    stale: list[Path] = []
    try:
        entries = [e.name for e in os.scandir(folder) if e.name != own_name and pattern.match(e.name)]
    except OSError:
        return live, stale
    for name in sorted(entries):
        state = lock_state(folder / name)
        if state == "live":
            live.append(folder / name)
        elif state == "stale":
            stale.append(folder / name)
    return live, stale


class Partial:
    """The partial file (or folder) a run writes for ``target``, created exclusively and locked.

    Args:
        target: the file (or folder) it becomes on ``commit()``.
        what: what it is, for messages (``"JSONL"``, ``"--record"``).
        folder: make a folder (for writers that create their own files inside it).
        exclusive: refuse when another run is writing ``target`` now (a live partial beside it).

    Attributes:
        path: the partial's own name; ``fd``: held open (and locked) until commit or discard;
        stale: partials of ``target`` left by killed runs (for the run's summary).

    Raises:
        OutputError: the folder cannot be created or written, or (``exclusive``) another run writes ``target``.
    """

    def __init__(self, target: str | os.PathLike, what: str, *, folder: bool = False, exclusive: bool = True):
        self.target, self.what, self.folder = Path(target), what, folder
        t = self.target
        stem, ext = _name_parts(t, folder)
        prefix, suffix = f".{stem}.", f".partial{ext}"
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
            if folder:
                name = tempfile.mkdtemp(dir=t.parent, prefix=prefix, suffix=suffix)
                fd = os.open(name, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            else:
                fd, name = tempfile.mkstemp(dir=t.parent, prefix=prefix, suffix=suffix)
        except OSError as e:
            raise OutputError(f"cannot write {what} {quoted(t)}: {reason(e)}; check the folder exists and is "
                              "writable") from e
        self.path, self.fd = Path(name), fd
        _lock(fd, exclusive=True)
        live, self.stale = siblings(t, own=self.path, folder_target=folder)
        if exclusive and live:
            self.discard()
            raise OutputError(f"{what} {quoted(t)} is being written by another run now (its partial file "
                              f"{quoted(live[0].name)} is in use); wait for it to end or choose another name")

    def text(self, newline: str | None = None) -> IO[str]:
        """A UTF-8 text file object on the partial (the lock stays with ``fd``)."""
        return open(self.fd, "w", encoding="utf-8", newline=newline, errors="backslashreplace", closefd=False)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def is_ours(self) -> bool:
        """The partial is still the file this run created (not removed, replaced or turned into a link)."""
        try:
            now, ours = os.lstat(self.path), os.fstat(self.fd)
        except (OSError, TypeError):
            return False
        return (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino)

    def check(self) -> None:
        """Raises OutputError unless ``is_ours()``."""
        if not self.is_ours():
            raise OutputError(f"{self.what} {quoted(self.target)}: its partial file {quoted(self.path.name)} was "
                              "removed or replaced during the run; nothing was written to the target")

    def sync(self) -> None:
        """Flush the partial to the disk, so the rename never commits a file whose data is not there."""
        try:
            os.fsync(self.fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # file systems without fsync
                raise OutputError(write_error(self.what, self.target, e)) from e

    def commit(self, inner: str | None = None) -> None:
        """Rename the partial onto ``target`` (for a folder: its entry ``inner``, which must be new).

        Raises:
            OutputError: the partial was replaced, or the rename failed (the partial is then removed).
        """
        if self.fd is None:
            return
        try:
            self.check()
            if inner is None:
                os.fchmod(self.fd, _default_mode(self.folder))
                os.replace(self.path, self.target)
            else:
                if self.target.exists() or self.target.is_symlink():
                    raise OutputError(f"{self.what} {quoted(self.target)} appeared during the run; this run's "
                                      f"result is kept in {quoted(self.path / inner)}")
                os.rename(self.path / inner, self.target)
                os.rmdir(self.path)
        except OSError as e:
            self.discard()
            raise OutputError(f"cannot complete {self.what} {quoted(self.target)}: {reason(e)}") from e
        except OutputError:
            self._close()
            raise
        self._close()

    def discard(self) -> None:
        """Remove the partial (idempotent); an existing ``target`` is never touched."""
        if self.fd is None:
            return
        if self.is_ours():  # only ever remove the file this run created
            with contextlib.suppress(OSError):
                if self.folder:
                    shutil.rmtree(self.path)
                else:
                    os.unlink(self.path)
        self._close()

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike, what: str = "file", mode: str = "wb") -> Iterator[IO]:
    """Write ``target``'s new content through a ``Partial``: fsynced and renamed into place when the block
    ends, removed when it raises. Two writers of one target each commit whole; the last one wins.
    Partials of ``target`` left by killed writers (unlocked, older than ``STALE_AGE_S``) are removed.

    Raises:
        OutputError: the folder is not writable, or the data could not be written or committed.
    """
    part = Partial(target, what, exclusive=False)
    try:
        for old in part.stale:
            if partial_pattern(target).match(old.name) and _older_than(old, STALE_AGE_S):
                with contextlib.suppress(OSError):
                    os.unlink(old)
        with open(part.fd, mode, closefd=False) as f:
            yield f
        part.sync()
        part.commit()
    except OSError as e:
        part.discard()
        raise OutputError(write_error(what, target, e)) from e
    except BaseException:
        part.discard()
        raise


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - os.lstat(path).st_mtime > seconds
    except OSError:
        return False


def reason(e: OSError) -> str:
    """The OS error as words with its symbol: ``No space left on device (ENOSPC)``."""
    name = errno.errorcode.get(e.errno or 0)
    return f"{e.strerror or e}" + (f" ({name})" if name else "")


def write_error(what: str, target: str | os.PathLike, e: OSError) -> str:
    """The one line for a write that failed: what, which file, the OS error."""
    return f"writing {what} {quoted(target)} failed: {reason(e)}"


def unreported_write_failure(folder: str | os.PathLike, size: int) -> str:
    """The OS error behind a writer that failed without saying why (OpenCV's ``VideoWriter.write`` only
    returns False): the file size limit, else a real 1 MiB test write in ``folder``, else unknown."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and size >= soft - (1 << 20):
            return reason(OSError(errno.EFBIG, os.strerror(errno.EFBIG))) + f" (this process may write {soft} bytes)"
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".au-edge-space.")
    except OSError as e:
        return reason(e)
    try:
        left, block = 1 << 20, b"\0" * (1 << 16)
        while left > 0:
            left -= os.write(fd, block[:left])
        os.fsync(fd)
    except OSError as e:
        return reason(e)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return "the encoder reported a failed write and the disk accepts a 1 MiB test write (see FFmpeg's message)"
