#!/usr/bin/env python3
"""Side-by-side benchmark: the faithful Theano/Lasagne script vs a PyTorch peer.

    make bench                                   # 3 runs each x 20 epochs
    make bench ARGS="--runs 1 --epochs 2"        # quick check
    python3 bench/bench.py --help

Runs A B A B ... (faithful, peer) as subprocesses on this machine, parses the
tutorial's printed lines from both, and prints (and writes to bench/results.md)
a table: median epoch time, total wall time including imports and compilation,
test accuracy, the ratio faithful/peer, and the achieved GFLOP/s against the
sgemm peak measured in the same run.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: unless --keep-openblas-env is given, the
benchmark unsets both for its own child processes (only for them) and says so
in the table; tests and CI never touch them.
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER_VENV = os.path.join(HERE, ".venv-peer")
PEER_REQS = os.path.join(HERE, "requirements-peer.txt")
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# FLOPs of one epoch, matrix products only (the elementwise work is < 1 %):
# 784-500-300-10, 50,000 training images (forward, dW of every layer, dX of
# layers 2 and 3: the input needs no gradient) + 10,000 validation images.
LAYERS = ((784, 500), (500, 300), (300, 10))
FWD = 2 * sum(i * o for i, o in LAYERS)                  # per image
TRAIN_FLOP = 50000 * (2 * FWD + 2 * sum(i * o for i, o in LAYERS[1:]))
VAL_FLOP = 10000 * FWD
EPOCH_GFLOP = (TRAIN_FLOP + VAL_FLOP) / 1e9              # ~135.2

# The tutorial's lines (the peer prints the same ones).
RE_EPOCH = re.compile(r"^Epoch (\d+) of (\d+) took ([\d.]+)s", re.M)
RE_TEST_ACC = re.compile(r"^  test accuracy:\s+([\d.]+) %", re.M)
RE_FINAL = re.compile(r"^Final results in ([\d.]+) seconds:", re.M)
RE_COMPILE = re.compile(r"^Compiled train_fn and val_fn in ([\d.]+)s", re.M)

FAITHFUL_SNIPPET = """
import inspect, numpy as np
import feedforward_lasagne_mnist as flm
seed, epochs = {seed}, {epochs}
params = inspect.signature(flm.run_network).parameters
kw = {{}}
if "seed" in params:
    kw["seed"] = seed
else:  # the 2016 signature: Lasagne's init and dropout seeds come from np.random
    np.random.seed(seed)
if "progress" in params:
    kw["progress"] = False
flm.run_network(num_epochs=epochs, **kw)
"""


def child_env(keep_openblas):
    env = dict(os.environ)
    if not keep_openblas:
        for var in OPENBLAS_VARS:
            env.pop(var, None)
    return env


def ensure_peer_venv(python3):
    """bench/.venv-peer with requirements-peer.txt, made once (idempotent)."""
    py = os.path.join(PEER_VENV, "bin", "python")
    stamp = os.path.join(PEER_VENV, "requirements.installed")
    if not os.path.exists(py):
        print("bench: creating %s" % PEER_VENV, flush=True)
        subprocess.check_call([python3, "-m", "venv", PEER_VENV])
    want = open(PEER_REQS).read()
    if not os.path.exists(stamp) or open(stamp).read() != want:
        print("bench: installing %s into the peer venv" % os.path.basename(PEER_REQS), flush=True)
        subprocess.check_call([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "-r", PEER_REQS])
        with open(stamp, "w") as f:
            f.write(want)
    return py


def run_logged(cmd, cwd, env, log_path, timeout):
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    wall = time.perf_counter() - t
    with open(log_path, "w") as f:
        f.write("$ %s\n# cwd %s, wall %.2fs, rc %d\n%s\n--- stderr ---\n%s"
                % (" ".join(cmd), cwd, wall, proc.returncode, proc.stdout, proc.stderr))
    if proc.returncode != 0:
        raise RuntimeError("%s failed (rc %d); log: %s\n%s"
                           % (cmd[0], proc.returncode, log_path, proc.stderr[-2000:]))
    return proc.stdout, proc.stderr, wall


def parse(stdout, wall, stderr=""):
    epochs = [float(m.group(3)) for m in RE_EPOCH.finditer(stdout)]
    acc = RE_TEST_ACC.search(stdout)
    # The script prints its compile time on stderr (stdout is the tutorial's).
    comp = RE_COMPILE.search(stdout) or RE_COMPILE.search(stderr)
    if not epochs or not acc:
        raise RuntimeError("could not parse the run's output:\n" + stdout[-2000:])
    return {"epoch": statistics.median(epochs), "epochs": epochs, "wall": wall,
            "acc": float(acc.group(1)), "compile": float(comp.group(1)) if comp else None}


def sgemm_peak(python, env, theano_dir=None):
    cmd = [python, os.path.join(HERE, "sgemm_peak.py")] + (["--theano", theano_dir] if theano_dir else [])
    out = subprocess.run(cmd, env=env, cwd=HERE, stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    _, gflops, n, what = out.strip().splitlines()[-1].split(" ", 3)
    return float(gflops), what


def shown_path(path):
    """A path as results.md shows it: relative to the repository when inside
    it, else "…/" and its last component (no absolute path of this machine)."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, ROOT)
    if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
        return rel
    return "…/" + os.path.basename(path.rstrip(os.sep))


def shown_args(argv):
    """The command line, with its absolute paths as shown_path() shows them."""
    shown = []
    for arg in argv:
        opt, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if os.path.isabs(value):
            value = shown_path(value)
        shown.append(opt + eq + value)
    return " ".join(shown)


def theano_blas(python, cwd, env):
    """What Theano's compiled ops link (blas.ldflags), as the faithful script sets it."""
    code = "import compat, theano; print(theano.config.blas.ldflags)"
    p = subprocess.run([python, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True)
    words = p.stdout.split()
    renames = [w for w in words if w.startswith("-D")]
    shown = " ".join("-L" + shown_path(w[2:]) if w.startswith("-L") else w
                     for w in words if not w.startswith("-D")) or "?"
    return shown + (" (+ %d -D symbol renames)" % len(renames) if renames else "")


def machine():
    model = platform.processor() or "?"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = re.search(r"^model name\s*:\s*(.*)$", info, re.M).group(1)
        flags = re.search(r"^flags\s*:\s*(.*)$", info, re.M).group(1).split()
    except (OSError, AttributeError):
        pass
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return "%s, %d cores, %s, %s" % (model, os.cpu_count(), isa, platform.platform())


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def med(rows, key):
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.median(vals) if vals else None


def table(results, peak, info):
    f, p = results["faithful"], results["peer"]
    fmt = lambda v, spec: "–" if v is None else format(v, spec)
    lines = [
        "| | median epoch (s) | total incl. compile (s) | compile (s) | test accuracy (%) "
        "| GFLOP/s | % of sgemm peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in (("faithful (Theano/Lasagne)", f), ("peer (PyTorch)", p)):
        if not rows:
            continue
        e = med(rows, "epoch")
        g = EPOCH_GFLOP / e
        lines.append("| %s | %.3f | %.1f | %s | %.2f | %.0f | %.0f %% |" % (
            name, e, med(rows, "wall"), fmt(med(rows, "compile"), ".2f"), med(rows, "acc"),
            g, 100 * g / peak))
    if f and p:
        lines.append("| ratio faithful/peer | %.2f | %.2f | | | | |" % (
            med(f, "epoch") / med(p, "epoch"), med(f, "wall") / med(p, "wall")))
    lines += ["", "Medians over %d run(s) each, alternating faithful/peer; %d epochs per run;"
              " %.1f GFLOP per epoch (matrix products: %.1f training + %.1f validation)."
              % (max(len(f), len(p)), info["epochs"], EPOCH_GFLOP, TRAIN_FLOP / 1e9,
                 VAL_FLOP / 1e9), ""]
    lines += ["- %s: %s" % kv for kv in info["about"]]
    lines += ["", "Per run (median epoch s / total s / test %):", ""]
    for name, rows in (("faithful", f), ("peer", p)):
        lines.append("- %s: %s" % (name, "; ".join(
            "%.3f / %.1f / %.2f" % (r["epoch"], r["wall"], r["acc"]) for r in rows)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each program (default 3)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per run (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first run; run i uses seed+i")
    ap.add_argument("--faithful-dir", default=ROOT,
                    help="directory holding feedforward_lasagne_mnist.py (default: the repo)")
    ap.add_argument("--faithful-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peer-python", default=None,
                    help="python with torch (default: bench/.venv-peer, created if missing)")
    ap.add_argument("--python3", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                    else sys.executable, help="python used to create the peer venv")
    ap.add_argument("--only", choices=("faithful", "peer"), help="run one side only")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as they are")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"),
                    help="where the table goes (default bench/results.md; '' for none)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = ap.parse_args(argv)

    env = child_env(args.keep_openblas_env)
    was = {v: os.environ.get(v) for v in OPENBLAS_VARS}
    if args.keep_openblas_env:
        blas_env = "kept as found: " + ", ".join("%s=%s" % (k, v) for k, v in was.items())
    else:
        blas_env = "unset for the benchmark's commands (were: %s)" % ", ".join(
            "%s=%s" % (k, "unset" if v is None else v) for k, v in was.items())
    print("bench: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE " + blas_env, flush=True)
    load_start = loadavg()

    sides = ("faithful", "peer") if args.only is None else (args.only,)
    peer_py = None
    if "peer" in sides:
        peer_py = args.peer_python or ensure_peer_venv(args.python3)
    logs = os.path.join(HERE, "logs")
    os.makedirs(logs, exist_ok=True)

    peaks = {}
    for name, py, theano_dir in (("faithful venv", args.faithful_python, args.faithful_dir),
                                 ("peer venv", peer_py, None)):
        if py:
            peaks[name] = sgemm_peak(py, env, theano_dir)
            print("bench: sgemm peak, %s (%s): %.0f GFLOP/s" % (name, peaks[name][1],
                                                              peaks[name][0]), flush=True)
    peak = max(g for g, _ in peaks.values())

    results = {"faithful": [], "peer": []}
    for i in range(args.runs):
        seed = args.seed + i
        for side in sides:
            if side == "faithful":
                cmd = [args.faithful_python, "-c",
                       FAITHFUL_SNIPPET.format(seed=seed, epochs=args.epochs)]
                cwd = args.faithful_dir
            else:
                cmd = [peer_py, os.path.join(HERE, "peer_torch.py"),
                       "--epochs", str(args.epochs), "--seed", str(seed)]
                cwd = ROOT
            log = os.path.join(logs, "%s-run%d.log" % (side, i + 1))
            out, err, wall = run_logged(cmd, cwd, env, log, args.timeout)
            r = parse(out, wall, err)
            results[side].append(r)
            print("bench: %-8s run %d/%d seed %d: median epoch %.3fs, total %.1fs, "
                  "compile %s, test %.2f %%" % (side, i + 1, args.runs, seed, r["epoch"], wall,
                                                "–" if r["compile"] is None else
                                                "%.2fs" % r["compile"], r["acc"]), flush=True)

    about = [("date", time.strftime("%Y-%m-%d %H:%M %Z")),
             ("machine", machine()),
             ("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE", blas_env),
             ("load average (1, 5, 15 min) at start / end", "%s / %s" % (load_start, loadavg())),
             ("Theano blas.ldflags", theano_blas(args.faithful_python, args.faithful_dir, env)),
             ("faithful script", os.path.normpath(os.path.join(
                 shown_path(args.faithful_dir), "feedforward_lasagne_mnist.py"))),
             ("sgemm peak (2000x2000, best of 7)", "; ".join(
                 "%s %.0f GFLOP/s (%s)" % (k, g, d) for k, (g, d) in peaks.items()))]
    text = table(results, peak, {"epochs": args.epochs, "about": about})
    print()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Benchmark: faithful Theano/Lasagne vs PyTorch peer\n\n"
                    "Written by `make bench` (bench/bench.py %s).\n\n" % shown_args(
                        argv if argv is not None else sys.argv[1:]) + text)
        print("bench: table written to %s" % os.path.relpath(args.out))


if __name__ == "__main__":
    main()
