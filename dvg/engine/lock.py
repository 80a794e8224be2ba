"""The exclusive lock of a `dvg build` output folder: one writer at a time.

Two builds writing one folder (a scheduler retrying a job while the first still runs) would
delete each other's spools and temporaries and could leave a manifest without committed
samples. ``out/.dvg-build.lock`` prevents that:

- It is held with ``flock`` for the whole run. The kernel drops the lock when its process
  ends in any way (SIGKILL, a crash, a lost node's NFS lease), so a stale lock after a crash
  cannot block the next run, and nothing has to be cleaned up.
- It records the owner (host, pid, start time), so a second writer exits at once with
  "another dvg build (host, pid) is writing here".
- On a file system without ``flock`` the file itself is the lock (created exclusively). A
  leftover file whose owner was on this host and is no longer alive is stale and taken over;
  one from another host cannot be checked and is reported with its path, to be deleted by hand
  once that build is known to be gone.

The lock file is never deleted while held (deleting a locked file would let a third process
lock a new file of the same name), so it stays in the folder between runs; it is hidden and no
reader looks at it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the lock-file fallback below
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".dvg-build.lock"
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class OutputLockedError(RuntimeError):
    """Another `dvg build` holds the output folder; the message names its host and pid."""

    def __init__(self, out_dir: Path, owner: dict[str, Any], hint: str = "") -> None:
        self.out_dir = out_dir
        self.owner = owner
        host, pid = owner.get("host", "unknown host"), owner.get("pid", "unknown pid")
        since = owner.get("started")
        when = ""
        if isinstance(since, int | float):
            when = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        super().__init__(
            f"another dvg build ({host}, {pid}) is writing here: {out_dir}{when}; wait for it to "
            "finish, stop it, or choose another --out" + hint
        )


class OutputLock:
    """``with OutputLock(out_dir):`` holds the folder's write lock or raises OutputLockedError.

    Only one ``OutputLock`` per folder may be held in a process at a time (a second one in the
    same process is refused as well).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_FILE
        self._fd: int | None = None
        self._file_lock = False  # True when the file itself is the lock (no flock)

    def acquire(self) -> None:
        if self._fd is not None or self._file_lock:
            raise RuntimeError(f"{self.path} is already held by this OutputLock")
        if fcntl is None:
            self._acquire_file()
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _parse(_read_all(fd))
            os.close(fd)
            raise OutputLockedError(self.out_dir, owner) from None
        except OSError as error:
            os.close(fd)
            if error.errno not in _NO_FLOCK:
                raise
            self._acquire_file()
            return
        # Ours now, whatever the file says: a previous owner's flock died with it.
        _write_owner(fd)
        self._fd = fd

    def _acquire_file(self) -> None:
        """Fallback without flock: the exclusively created file is the lock."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = _parse(self.path.read_bytes())
                if not _is_stale(owner):
                    hint = "" if owner.get("host") == socket.gethostname() else (
                        f" (this file system has no flock, so a lock from another host cannot be "
                        f"checked: delete {self.path} if that build is gone)"
                    )  # fmt: skip
                    raise OutputLockedError(self.out_dir, owner, hint) from None
                # Stale: its owner ran on this host and is gone. Rename first, so two takers
                # cannot both remove it.
                stale = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
                try:
                    os.rename(self.path, stale)
                except FileNotFoundError:
                    continue
                stale.unlink(missing_ok=True)
                continue
            _write_owner(fd)
            os.close(fd)
            self._file_lock = True
            return
        raise OutputLockedError(self.out_dir, _parse(self.path.read_bytes()))

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the next reader sees no owner (the file stays)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._file_lock:
            self.path.unlink(missing_ok=True)
            self._file_lock = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}


def _write_owner(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_owner()).encode(), 0)
    os.fsync(fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, min(size, 1 << 16), 0)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        owner = json.loads(data)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _is_stale(owner: dict[str, Any]) -> bool:
    """True when the recorded owner ran on this host and its process is gone (an unreadable or
    empty record is stale too: the writer died before writing it)."""
    if not owner:
        return True
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
