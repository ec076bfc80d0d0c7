"""The one way the project writes a file: all of it, or nothing.

write(path, fill) calls fill(f) on a temporary file next to the destination
and renames it into place only when fill returned: a crash, an error or a
Ctrl-C never leaves a partial file at `path`, and the old file stays intact
until the new one is complete. What `path` already is decides the rest:

- a symlink: the file it points to is written (atomically, next to it), and
  the link stays a link;
- an existing regular file: replaced, keeping its permission bits (and, for
  root, its owner);
- a character device or a FIFO (/dev/null, /dev/stdout, a named pipe):
  written into directly, as there is nothing to replace;
- a directory or anything else: refused.
"""
import os
import stat
import tempfile


def _stat_or_none(path):
    """os.stat(path) (following links), or None when nothing is there."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def is_stream(st):
    return st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode))


def why_not_writable(path):
    """Why `path` cannot be written, or None."""
    try:
        st = _stat_or_none(path)
    except OSError as e:
        return e.strerror or str(e)
    if is_stream(st):
        return None if os.access(path, os.W_OK) else "not writable"
    if st is not None and stat.S_ISDIR(st.st_mode):
        return "a directory"
    if st is not None and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    folder = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(folder):
        return "no directory " + folder
    if not os.access(folder, os.W_OK):
        return "directory %s not writable" % folder
    uid, dir_st = os.getuid(), os.stat(folder)
    if (st is not None and dir_st.st_mode & stat.S_ISVTX and uid not in (0, st.st_uid, dir_st.st_uid)):
        return "owned by another user in the sticky directory %s" % folder
    return None


def check_writable(path):
    """OSError naming `path` and the reason when it cannot be written: checked
    before long work starts (and again by write)."""
    reason = why_not_writable(path)
    if reason:
        raise OSError("{}: cannot write there ({})".format(path, reason))


def write(path, fill, mode="wb"):
    """Write `path` through fill(f), atomically (see the module's docstring).

    mode: "wb", "w" (text) or "w+b" (fill may read back what it wrote).
    Raises OSError naming `path` when it cannot be written."""
    st = _stat_or_none(path)
    if is_stream(st):
        try:
            with open(path, mode.replace("+", "")) as f:
                fill(f)
        except OSError as e:  # e.g. the reader of a pipe went away
            raise OSError("{}: cannot write ({})".format(path, e.strerror or e)) from e
        return
    check_writable(path)
    target = os.path.realpath(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-",
                                   suffix="-" + os.path.basename(target))
    except OSError as e:
        raise OSError("{}: cannot write there ({})".format(path, e.strerror or e))
    try:
        with os.fdopen(fd, mode) as f:
            if st is not None:  # replacing a file: keep its permissions (and owner)
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                if os.getuid() == 0:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(f.fileno(), 0o666 & ~umask)  # mkstemp's files are private (0600)
            fill(f)
        os.replace(tmp, target)
    except OSError as e:
        os.unlink(tmp)
        raise OSError("{}: cannot write ({})".format(path, e.strerror or e)) from e
    except BaseException:
        os.unlink(tmp)
        raise
