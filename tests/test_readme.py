"""The README's promises about itself: its map of the tutorial onto the
script points at the right lines, its sample output is what the script
prints in the environment the README states, and the project's text speaks
of the software only."""
import glob
import importlib.util
import os
import platform
import re

import pytest

from conftest import run_cli

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


def load_figures():
    spec = importlib.util.spec_from_file_location("figures", os.path.join(ROOT, "tools",
                                                                          "figures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIGURES = load_figures()


def figure(text, name):
    return {m.group(2): m.group(3) for m in FIGURES.MARK.finditer(text)}[name]


def cpu_has_avx2():
    from lasagne_mnist_port.training import cpu_flags
    return platform.machine() == "x86_64" and {"avx2", "fma"} <= cpu_flags()


def test_the_result_line_and_the_sample_agree():
    sample = figure(README, "sample")
    accuracy = re.search(r"  test accuracy:\t\t([\d.]+) %", sample).group(1)
    seconds = float(re.search(r"Final results in ([\d.]+) seconds", sample).group(1))
    result = figure(README, "result")
    assert "**%s %% in %.1f s**" % (accuracy, seconds) in result, result


@pytest.mark.skipif(not cpu_has_avx2(), reason="OpenBLAS's Haswell kernels need an x86-64 "
                    "CPU with AVX2 and FMA")
def test_the_readme_sample_is_what_the_script_prints():
    """The sample's first two epochs, rerun in the environment the README states
    (2 of the 20 epochs: the same seed draws the same weights, batches and masks)."""
    sample = figure(README, "sample").splitlines()
    stated = "%s python feedforward_lasagne_mnist.py --seed 1 --no-progress" % " ".join(
        "%s=%s" % kv for kv in FIGURES.REFERENCE_ENV.items())
    assert sample[0] == "```" and stated in README.replace("\n", " ")
    result = run_cli("--seed", "1", "--no-progress", "--epochs", "2",
                     env=dict(FIGURES.REFERENCE_ENV, FLM_SPEEDUPS="1"))
    assert result.returncode == 0, result.stderr
    expected = [line for line in sample[1:11] if " took " not in line]
    printed = [line for line in result.stdout.splitlines()[:10] if " took " not in line]
    assert printed == expected


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
