#!/usr/bin/env python3
"""Every result a reader can check, made again from one run on one machine.

    make figures            (or: .venv/bin/python tools/figures.py)

It trains the tutorial's 20 epochs with seeds 1, 2 and 3, with the speed-ups
and without them (--no-speedups), seed 1 also writing docs/history.csv and
docs/curves.png; runs tutorial.ipynb top to bottom and stores its outputs; and
writes what it saw, with the machine and the date, between the
`<!-- figures:NAME -->` and `<!-- /figures:NAME -->` lines of README.md,
docs/cli.md and docs/speedups.md. About 5 minutes on two cores.

The numbers depend on the matrix-product kernels the BLAS picks for the CPU
(the same seed gives the same numbers on one machine, the last digits differ
between kernels). So that they can be checked on another machine, every run
here uses OpenBLAS's Haswell kernels with a fixed cache size
(OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512, whatever the environment
says): the kernels OpenBLAS picks by itself on x86-64 CPUs with AVX2 but
without AVX-512, and which any x86-64 CPU with AVX2 can be told to use.
tests/test_readme.py reruns the sample's first epochs in that environment.
"""
import datetime
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "feedforward_lasagne_mnist.py")
REFERENCE_ENV = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
MARK = re.compile(r"(<!-- figures:(\w+) -->\n)(.*?)(<!-- /figures:\2 -->)", re.S)


def reference_env():
    """The environment every run of this script (and the README's test) uses."""
    env = dict(os.environ, **REFERENCE_ENV)
    env.pop("FLM_SPEEDUPS", None)
    return env


def train(*args):
    """(stdout, stderr) of the tutorial's command line with `args`."""
    result = subprocess.run([sys.executable, SCRIPT, "--no-progress"] + list(args), cwd=ROOT,
                            env=reference_env(), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("figures: %s %s failed:\n%s" % (SCRIPT, " ".join(args), result.stderr))
    return result.stdout, result.stderr


def final(stdout):
    """(test accuracy in %, seconds) of a run's last lines."""
    return (float(re.search(r"  test accuracy:\t\t([\d.]+) %", stdout).group(1)),
            float(re.search(r"Final results in ([\d.]+) seconds", stdout).group(1)))


def machine():
    """e.g. 'AMD EPYC with AVX2, 2 vCPUs' (what decides the BLAS's kernels)."""
    sys.path.insert(0, ROOT)
    from lasagne_mnist_port.training import cpu_flags, cpu_name
    flags = cpu_flags()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return "%s%s, %d vCPUs" % (cpu_name(), " with " + vector if vector else "", os.cpu_count())


def run_notebook():
    import nbformat
    from nbclient import NotebookClient
    path = os.path.join(ROOT, "tutorial.ipynb")
    notebook = nbformat.read(path, as_version=4)
    kernelspec = notebook.metadata.get("kernelspec")
    os.environ.update(REFERENCE_ENV)  # the kernel inherits it
    os.environ.pop("FLM_NOTEBOOK_QUICK", None)
    NotebookClient(notebook, kernel_name="python3", timeout=1800,
                   resources={"metadata": {"path": ROOT}}).execute()
    notebook.metadata["kernelspec"] = kernelspec  # the name `make notebook` registers
    return notebook


def filled(text, figures):
    def fill(match):
        name = match.group(2)
        return match.group(1) + figures[name] + match.group(4) if name in figures \
            else match.group(0)
    return MARK.sub(fill, text)


def replace_figures(path, figures):
    text = open(path, encoding="utf-8").read()
    new = filled(text, figures)
    if new != text:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(path + ".tmp", path)


def main():
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    where = machine()
    print("figures: %s, %s; OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512" % (where, when),
          file=sys.stderr)
    train("--epochs", "1", "--limit", "1000")  # compile once, so that every run below is warm
    train("--epochs", "1", "--limit", "1000", "--no-speedups")
    runs, stock = {}, {}
    for seed in (2, 3, 1):
        extra = ["--history", "docs/history.csv", "--plot", "docs/curves.png"] if seed == 1 else []
        runs[seed] = train("--seed", str(seed), *extra)
        stock[seed] = final(train("--seed", str(seed), "--no-speedups")[0])
        print("figures: seed %d: %s with the speed-ups, %s without"
              % (seed, final(runs[seed][0]), stock[seed]), file=sys.stderr)
    notebook = run_notebook()

    stdout, stderr = runs[1]
    lines = stdout.splitlines(True)  # loading, starting, 20 x 4 epoch lines, 3 final lines
    sample = "".join(lines[:10] + ["...\n"] + lines[-7:])
    acc = {s: final(runs[s][0]) for s in runs}
    stderr_lines = [line for line in stderr.splitlines()
                    if line.startswith(("Device:", "Compiled"))]
    stderr_lines[0] = re.sub(r"-L\S*/site-packages/", "-L.venv/lib/python3.11/site-packages/",
                             stderr_lines[0])
    history = open(os.path.join(ROOT, "docs", "history.csv")).read().splitlines()[:3]
    figures = {
        "result": "Here, on %s and no GPU: **%.2f %% in %.1f s** (%s, `make run ARGS=\"--seed 1\"` "
                  "with a warm compile cache; seeds 2 and 3: %.2f %% and %.2f %% in %.1f and "
                  "%.1f s).\n" % (where, acc[1][0], acc[1][1], when, acc[2][0], acc[3][0],
                                  acc[2][1], acc[3][1]),
        "sample": "```\n%s```\n" % sample,
        "stderr": "```\n%s\n```\n" % "\n".join(stderr_lines),
        "history": "```\n%s\n```\n" % "\n".join(history),
        "seeds": "Test accuracy after the 20 epochs, seeds 1, 2 and 3 (%s, %s): %s with the "
                 "speed-ups (median %.2f %%), %s with `--no-speedups` (median %.2f %%).\n"
                 % (where, when, ", ".join("%.2f %%" % acc[s][0] for s in (1, 2, 3)),
                    statistics.median(acc[s][0] for s in acc),
                    ", ".join("%.2f %%" % stock[s][0] for s in (1, 2, 3)),
                    statistics.median(stock[s][0] for s in stock)),
        "machine": "%s, %s, with OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512.\n"
                   % (where, when),
    }
    for page in ("README.md", "docs/cli.md", "docs/speedups.md"):
        replace_figures(os.path.join(ROOT, page), figures)
    import nbformat
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = filled(cell.source, figures)
    nbformat.write(notebook, os.path.join(ROOT, "tutorial.ipynb"))
    print("figures: README.md, docs/cli.md, docs/speedups.md, docs/history.csv, "
          "docs/curves.png and tutorial.ipynb written", file=sys.stderr)


if __name__ == "__main__":
    main()
