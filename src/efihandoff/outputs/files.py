"""Write one output file atomically, never under /sys, /dev or /proc."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from efihandoff.errors import OutputError
from efihandoff.outputs.sysfs import check_target, removed_on_signal


def write_text(out: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``out`` through a temporary file renamed into place."""
    target = check_target(out)
    if target.is_dir():
        raise OutputError(f"{target} is a directory")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {target}: {target.parent} is not a directory")
    tmp = None
    with removed_on_signal():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; an output is an ordinary file
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:  # on an error, KeyboardInterrupt or SIGTERM: no temporary file left behind
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
    return target
