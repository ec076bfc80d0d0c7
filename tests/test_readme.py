"""The README's promises about itself: its map of the tutorial onto the
script points at the right lines, and the project's text speaks of the
software only."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
LINK = re.compile(r"\[`([^`]+)` … `([^`]+)`\]\(feedforward_lasagne_mnist\.py#L(\d+)-L(\d+)\)")


def test_the_map_points_at_the_lines_it_names():
    source = open(os.path.join(ROOT, "feedforward_lasagne_mnist.py"),
                  encoding="utf-8").read().splitlines()
    links = LINK.findall(README)
    assert len(links) >= 12
    for first, last, start, end in links:
        start, end = int(start), int(end)
        assert 1 <= start <= end <= len(source)
        assert first in source[start - 1], (first, start, source[start - 1])
        assert last in source[end - 1], (last, end, source[end - 1])


def project_text():
    """README, docs, bench and tools, and the modules' own text (tests excluded)."""
    patterns = ["README.md", "docs/*.md", "bench/*.md", "bench/*.py", "tools/*", "*.py",
                "Makefile", ".ci/*"]
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            if os.path.isfile(path):
                yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


# How the software was made, by whom and with which internal tools, and the
# developer's own paths: none of it helps a user.
FORBIDDEN = [r"\bissues? ?#?\d", r"\bissue'?s\b", r"\bsessions? that\b", r"\bthe team\b",
             r"\bthis task\b", r"\bworkplace\b", r"\bdevice tool\b", r"\.\./shared\b",
             r"(?<![\w.])/work/", r"\bfiles_at\b", r"\btimeout_s\b", r"\bcarry: \["]


@pytest.mark.parametrize("pattern", FORBIDDEN)
def test_the_project_speaks_of_itself_only(pattern):
    found = ["%s:%d: %s" % (path, n, line.strip())
             for path, text in project_text()
             for n, line in enumerate(text.splitlines(), 1)
             if re.search(pattern, line, re.IGNORECASE)]
    assert not found, "\n".join(found)
