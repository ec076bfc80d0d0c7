#!/usr/bin/env python3
"""Side-by-side benchmark: the faithful Theano/Lasagne script, the same script
on stock Theano/Lasagne code paths, and PyTorch and JAX peers.

    make bench                                   # 3 runs each x 20 epochs
    make bench ARGS="--runs 1 --epochs 2"        # quick check
    python3 bench/bench.py --help

Runs A B C D A B C D ... (faithful, stock, torch, jax) as subprocesses on this
machine, parses the tutorial's printed lines from all, and prints (and writes
to bench/results.md) a table: median epoch time, total wall time including
imports and compilation, test accuracy, the ratio to the fastest peer, the
achieved GFLOP/s against the sgemm peak, and the GEMM-bound limit of an epoch
at the net's own shapes, all measured in the same run.

Then the first run: `python feedforward_lasagne_mnist.py --epochs N --seed S`
(the command a newcomer types) with an empty compile cache (a new
compiledir), alternating with the same command on a warm one, and the ratio
of their wall times. The last lines are the three aims: the script at most
0.6x the fastest peer and 1.0x the GEMM-bound limit (median epochs), its
cold first run at most 1.25x a warm one.

Before the first run, the variants: the changes the tutorial invites its
reader to make (hidden layers 800-800, a third hidden layer, adam, batch
100), each made in a copy of the script by replacing its lines exactly as a
reader would, and in the peers by their flags; fewer runs and epochs each
(--variant-runs, --variant-epochs). They get a table of their own: median
epochs, script / fastest peer (aim <= 0.8), the speed-up ops in the
variant's train_fn, and its GEMM-bound limit at the variant's shapes.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: unless --keep-openblas-env is given, the
benchmark unsets both for its own child processes (only for them) and says so
in the table; tests and CI never touch them.
"""
import argparse
import json
import os
import platform
import re
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Each peer in its own venv, made on first use from its pinned requirements.
PEERS = {"torch": (os.path.join(HERE, ".venv-peer"), os.path.join(HERE, "requirements-peer.txt"),
                   "peer_torch.py"),
         "jax": (os.path.join(HERE, ".venv-jax"), os.path.join(HERE, "requirements-jax.txt"),
                 "peer_jax.py")}
SIDES = ("faithful", "stock", "torch", "jax")
NAMES = {"faithful": "faithful (Theano/Lasagne, speed-ups on)",
         "stock": "faithful, stock code paths (FLM_SPEEDUPS=0)",
         "torch": "peer: PyTorch eager", "jax": "peer: JAX, jit of the whole step"}
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
RE_OPS = re.compile(r"^bench: train_fn ops: (.*)$", re.M)

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


# The changes the tutorial invites its reader to make. Each: what it is, the
# reader's edits of feedforward_lasagne_mnist.py (each old text must be in
# the script exactly once), the peers' flags for the same change, and the
# net's layer sizes and batch (for its GEMM-bound limit).
THIRD_LAYER_OLD = """    l_hid2_drop = DropoutLayer(l_hid2, p=0.4)

    l_out = DenseLayer(
            l_hid2_drop, num_units=10,"""
THIRD_LAYER_NEW = """    l_hid2_drop = DropoutLayer(l_hid2, p=0.4)

    l_hid3 = DenseLayer(
            l_hid2_drop, num_units=300,
            nonlinearity=rectify)
    l_hid3_drop = DropoutLayer(l_hid3, p=0.4)

    l_out = DenseLayer(
            l_hid3_drop, num_units=10,"""
TUTORIAL_SHAPE = ((784, 500, 300, 10), 500)
VARIANTS = {
    "hidden-800": ("hidden layers 800-800",
                   [("l_in, num_units=500,", "l_in, num_units=800,"),
                    ("l_hid1_drop, num_units=300,", "l_hid1_drop, num_units=800,")],
                   ["--hidden", "800,800"], ((784, 800, 800, 10), 500)),
    "three-layers": ("a third hidden layer, 500-300-300, dropout after each",
                     [(THIRD_LAYER_OLD, THIRD_LAYER_NEW)],
                     ["--hidden", "500,300,300"], ((784, 500, 300, 300, 10), 500)),
    "adam": ("adam instead of rmsprop (Lasagne's defaults: lr 0.001, beta1 0.9, "
             "beta2 0.999, eps 1e-8)",
             [("from lasagne.updates import rmsprop", "from lasagne.updates import adam"),
              ("updates = rmsprop(loss, params, learning_rate=learning_rate)",
               "updates = adam(loss, params, learning_rate=learning_rate)")],
             ["--update", "adam"], TUTORIAL_SHAPE),
    "batch-100": ("batch 100 (run_network's batch_size=100)",
                  [("batch_size=500,", "batch_size=100,")],
                  ["--batch-size", "100"], (TUTORIAL_SHAPE[0], 100)),
}
VARIANT_SIDES = ("faithful", "torch", "jax")
VARIANT_AIM = 0.8

# Around FAITHFUL_SNIPPET for the variants: records the functions
# run_network compiles and, after the run, prints on stderr how many of
# each op train_fn (the first) holds.
OPS_BEFORE = """
import collections, json, sys, theano
compiled = []
_function = theano.function
def _recorded(*args, **kwargs):
    compiled.append(_function(*args, **kwargs))
    return compiled[-1]
theano.function = _recorded
"""
OPS_AFTER = """
ops = collections.Counter(type(n.op).__name__ for n in compiled[0].maker.fgraph.toposort())
speedup_ops = sorted({type(n.op).__name__ for n in compiled[0].maker.fgraph.toposort()
                      if type(n.op).__module__.startswith("lasagne_mnist_port.speedups")})
print("bench: train_fn ops: " + json.dumps({"all": ops, "speed-ups": speedup_ops}),
      file=sys.stderr)
"""


class VariantError(Exception):
    pass


def variant_source(source, name):
    """The script's text with variant `name`'s edits; VariantError when an
    edit's old text is not in it exactly once."""
    for old, new in VARIANTS[name][1]:
        found = source.count(old)
        if found != 1:
            raise VariantError("bench: variant %s: %r is in feedforward_lasagne_mnist.py %d "
                               "times, not once; update VARIANTS in bench/bench.py"
                               % (name, old, found))
        source = source.replace(old, new)
    return source


def write_variant(faithful_dir, name, folder):
    """The variant's copy of the script, written as feedforward_lasagne_mnist.py
    into a new folder under `folder`; returns that folder."""
    with open(os.path.join(faithful_dir, "feedforward_lasagne_mnist.py")) as f:
        source = variant_source(f.read(), name)
    where = os.path.join(folder, name)
    os.makedirs(where)
    with open(os.path.join(where, "feedforward_lasagne_mnist.py"), "w") as f:
        f.write(source)
    return where


def child_env(keep_openblas):
    env = dict(os.environ)
    if not keep_openblas:
        for var in OPENBLAS_VARS:
            env.pop(var, None)
    return env


def ensure_venv(python3, venv, reqs):
    """A peer's venv with its requirements, made once (idempotent)."""
    py = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "requirements.installed")
    if not os.path.exists(py):
        print("bench: creating %s" % shown_path(venv), flush=True)
        subprocess.check_call([python3, "-m", "venv", venv])
    want = open(reqs).read()
    if not os.path.exists(stamp) or open(stamp).read() != want:
        print("bench: installing %s into %s" % (os.path.basename(reqs), shown_path(venv)),
              flush=True)
        subprocess.check_call([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "-r", reqs])
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
    ops = RE_OPS.search(stderr)
    if not epochs or not acc:
        raise RuntimeError("could not parse the run's output:\n" + stdout[-2000:])
    return {"epoch": statistics.median(epochs), "epochs": epochs, "wall": wall,
            "acc": float(acc.group(1)), "compile": float(comp.group(1)) if comp else None,
            "ops": json.loads(ops.group(1)) if ops else None}


def sgemm(python, env, theano_dir=None, net=False, shape=None):
    """(GFLOP/s, what) of the sgemm peak, or (seconds per epoch, GFLOP/s, what)
    of the GEMM-bound limit at the net's shapes (net=True; shape: (layer
    sizes, batch) of a variant, else the tutorial's)."""
    cmd = [python, os.path.join(HERE, "sgemm_peak.py")] + (
        ["--theano", theano_dir] if theano_dir else []) + (["--net"] if net else []) + (
        ["--sizes", ",".join(map(str, shape[0])), "--batch-size", str(shape[1])]
        if shape else [])
    out = subprocess.run(cmd, env=env, cwd=HERE, stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    words = out.strip().splitlines()[-1].split(" ", 3)
    if net:
        return float(words[1]), float(words[2]), words[3]
    return float(words[1]), words[3]


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
    code = "import feedforward_lasagne_mnist, theano; print(theano.config.blas.ldflags)"
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


# The aims: (what, limit), each a ratio that must not exceed the limit.
AIMS = (("script ÷ fastest peer, median epoch", 0.6),
        ("script ÷ GEMM-bound limit, median epoch", 1.0),
        ("first run, empty compile cache ÷ warm cache, wall time", 1.25))


def first_runs(python, cwd, env, rounds, epochs, seed, timeout):
    """(cold walls, warm walls): the tutorial's command run with an empty
    compiledir, alternating with the same command on a warm one (the first
    cold run's, warm once it is done)."""
    cmd = [python, "feedforward_lasagne_mnist.py", "--epochs", str(epochs), "--seed", str(seed),
           "--no-progress"]
    logs = os.path.join(HERE, "logs")
    base = tempfile.mkdtemp(prefix="bench-compiledir-")
    cold, warm = [], []

    def run(i, name, compiledir, log):
        flags = "compiledir=" + compiledir
        if env.get("THEANO_FLAGS"):
            flags = env["THEANO_FLAGS"] + "," + flags
        out, err, wall = run_logged(cmd, cwd, dict(env, THEANO_FLAGS=flags),
                                    os.path.join(logs, log), timeout)
        r = parse(out, wall, err)
        print("bench: first run, %s compile cache, round %d/%d: %.1fs (compile %s)"
              % (name, i + 1, rounds, wall, "–" if r["compile"] is None else "%.2fs" % r["compile"]),
              flush=True)
        return wall

    try:
        for i in range(rounds):
            cold.append(run(i, "empty", os.path.join(base, "cold%d" % i),
                            "first-cold-run%d.log" % (i + 1)))
            warm.append(run(i, "warm", os.path.join(base, "cold0"), "first-warm-run%d.log" % (i + 1)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return cold, warm


def aims(results, limit, first):
    """[(what, ratio or None, limit)] as measured in this run."""
    peers = [med(results[p], "epoch") for p in ("torch", "jax") if results[p]]
    script = med(results["faithful"], "epoch") if results["faithful"] else None
    ratios = [script / min(peers) if script and peers else None,
              script / limit[0] if script else None,
              statistics.median(first[0]) / statistics.median(first[1]) if first else None]
    return [(what, r, aim) for (what, aim), r in zip(AIMS, ratios)]


def aim_lines(measured):
    return ["- %s: %s (aim ≤ %.2f: %s)" % (
        what, "not measured" if r is None else "%.2f" % r, aim,
        "–" if r is None else ("met" if r <= aim else "not met")) for what, r, aim in measured]


def table(results, peak, limit, info):
    fmt = lambda v, spec: "–" if v is None else format(v, spec)
    peers = [med(results[p], "epoch") for p in ("torch", "jax") if results[p]]
    fastest = min(peers) if peers else None
    lines = [
        "| | median epoch (s) | total incl. compile (s) | compile (s) | test accuracy (%) "
        "| GFLOP/s | % of sgemm peak | ÷ fastest peer | ÷ GEMM-bound limit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in SIDES:
        rows = results[side]
        if not rows:
            continue
        e = med(rows, "epoch")
        g = EPOCH_GFLOP / e
        lines.append("| %s | %.3f | %.1f | %s | %.2f | %.0f | %.0f %% | %s | %.2f |" % (
            NAMES[side], e, med(rows, "wall"), fmt(med(rows, "compile"), ".2f"),
            med(rows, "acc"), g, 100 * g / peak,
            fmt(fastest and e / fastest, ".2f"), e / limit[0]))
    lines.append("| GEMM-bound limit: the net's 8 + 3 products alone, Theano Dot22 | %.3f "
                 "| | | | %.0f | %.0f %% | | 1.00 |" % (limit[0], limit[1], 100 * limit[1] / peak))
    lines += ["", "Medians over %d run(s) each, alternating %s; %d epochs per run, the median "
              "epoch of each run; %.1f GFLOP per epoch (matrix products: %.1f training + %.1f "
              "validation). Test accuracy: median over the runs (seed = run number)."
              % (max(len(r) for r in results.values()),
                 "/".join(s for s in SIDES if results[s]), info["epochs"], EPOCH_GFLOP,
                 TRAIN_FLOP / 1e9, VAL_FLOP / 1e9), ""]
    lines += ["- %s: %s" % kv for kv in info["about"]]
    lines += ["", "Per run (median epoch s / total s / test %):", ""]
    for side in SIDES:
        if results[side]:
            lines.append("- %s: %s" % (side, "; ".join(
                "%.3f / %.1f / %.2f" % (r["epoch"], r["wall"], r["acc"])
                for r in results[side])))
    if info["first"]:
        cold, warm = info["first"]
        lines += ["", "First run (`python feedforward_lasagne_mnist.py --epochs %d`, wall s, "
                  "alternating): empty compile cache %s; warm %s; medians %.1f / %.1f"
                  % (info["epochs"], ", ".join("%.1f" % w for w in cold),
                     ", ".join("%.1f" % w for w in warm), statistics.median(cold),
                     statistics.median(warm))]
    lines += ["", "Aims, ratios of this run:", ""] + aim_lines(info["aims"])
    return "\n".join(lines) + "\n"


def run_variants(names, sides, pythons, args, env, logs):
    """{variant: {side: [parse() of each run]}}, sides alternating within
    each round; the faithful side runs the variant's copy of the script."""
    results = {name: {side: [] for side in sides} for name in names}
    folder = tempfile.mkdtemp(prefix="bench-variants-")
    try:
        dirs = {name: write_variant(args.faithful_dir, name, folder) for name in names}
        for name in names:
            for i in range(args.variant_runs):
                seed = args.seed + i
                for side in sides:
                    if side == "faithful":
                        cmd = [pythons[side], "-c", OPS_BEFORE + FAITHFUL_SNIPPET.format(
                            seed=seed, epochs=args.variant_epochs) + OPS_AFTER]
                        cwd = dirs[name]
                        path = os.pathsep.join(filter(None, [os.path.abspath(args.faithful_dir),
                                                             env.get("PYTHONPATH")]))
                        side_env = dict(env, PYTHONPATH=path)
                    else:
                        cmd = [pythons[side], os.path.join(HERE, PEERS[side][2]),
                               "--epochs", str(args.variant_epochs), "--seed", str(seed)
                               ] + VARIANTS[name][2]
                        cwd, side_env = HERE, env
                    log = os.path.join(logs, "variant-%s-%s-run%d.log" % (name, side, i + 1))
                    out, err, wall = run_logged(cmd, cwd, side_env, log, args.timeout)
                    r = parse(out, wall, err)
                    results[name][side].append(r)
                    print("bench: variant %s, %-8s run %d/%d seed %d: median epoch %.3fs, "
                          "test %.2f %%%s" % (name, side, i + 1, args.variant_runs, seed,
                                              r["epoch"], r["acc"],
                                              "" if r["ops"] is None else ", speed-up ops: "
                                              + (", ".join(r["ops"]["speed-ups"]) or "none")),
                          flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def speedup_ops(rows):
    """The speed-up ops of the variant's train_fn with their counts, as the
    faithful runs measured them."""
    ops = next((r["ops"] for r in rows if r["ops"]), None)
    if ops is None:
        return "–"
    return ", ".join("%s %d" % (op, ops["all"][op]) for op in ops["speed-ups"]) or "none"


def variant_table(results, limits, info):
    """The variants' table, its notes and its per-run lines."""
    fmt = lambda v, spec: "–" if v is None else format(v, spec)
    lines = ["| variant | faithful (s) | PyTorch (s) | JAX (s) | GEMM-bound limit (s) "
             "| script ÷ fastest peer | aim ≤ %.1f | speed-up ops in train_fn | why not |"
             % VARIANT_AIM, "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for name, sides in results.items():
        e = {side: med(sides.get(side) or [], "epoch") if sides.get(side) else None
             for side in VARIANT_SIDES}
        peers = [e[p] for p in ("torch", "jax") if e[p] is not None]
        ratio = e["faithful"] / min(peers) if e["faithful"] is not None and peers else None
        met = "–" if ratio is None else ("met" if ratio <= VARIANT_AIM else "not met")
        ops = speedup_ops(sides.get("faithful") or [])
        why = ""
        if met == "not met":
            limit = limits.get(name)
            fastest = min((e[p], p) for p in ("torch", "jax") if e[p] is not None)
            why = ("script at %.2fx the GEMM-bound limit, %s at %.2fx"
                   % (e["faithful"] / limit, fastest[1], fastest[0] / limit) if limit
                   else "no GEMM-bound limit measured")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(e["faithful"], ".3f"), fmt(e["torch"], ".3f"), fmt(e["jax"], ".3f"),
            fmt(limits.get(name), ".3f"), fmt(ratio, ".2f"), met, ops, why))
    lines += ["", "Medians over %d run(s) each of %d epochs, alternating %s within each "
              "variant; the median epoch of each run. The faithful side runs a copy of "
              "feedforward_lasagne_mnist.py with the variant's lines replaced, speed-ups on; "
              "the peers the same change by their flags. GEMM-bound limit: the variant's "
              "matrix products alone at its shapes, through Theano's Dot22. Why not: the "
              "median epochs of the script and of the fastest peer over that limit: how much of "
              "the gap the products (near 1.0) or the rest of the step account for."
              % (info["runs"], info["epochs"], "/".join(info["sides"])), ""]
    lines += ["- %s: %s" % (name, VARIANTS[name][0]) for name in results]
    lines += ["", "Per run (median epoch s / test %):", ""]
    for name, sides in results.items():
        for side, rows in sides.items():
            lines.append("- %s, %s: %s" % (name, side, "; ".join(
                "%.3f / %.2f" % (r["epoch"], r["acc"]) for r in rows)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each program (default 3)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per run (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first run; run i uses seed+i")
    ap.add_argument("--faithful-dir", default=ROOT,
                    help="directory holding feedforward_lasagne_mnist.py (default: the repo)")
    ap.add_argument("--faithful-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--python3", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                    else sys.executable, help="python used to create the peers' venvs")
    ap.add_argument("--only", default=",".join(SIDES),
                    help="comma-separated sides to run, of %s (default: all)" % ",".join(SIDES))
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as they are")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"),
                    help="where the table goes (default bench/results.md; '' for none)")
    ap.add_argument("--first-runs", type=int, default=3,
                    help="rounds of the first-run measurement, cold then warm (default 3; 0: none)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated variants to run, of %s (default: all)"
                    % ",".join(VARIANTS))
    ap.add_argument("--no-variants", action="store_true", help="run no variant")
    ap.add_argument("--variant-runs", type=int, default=2,
                    help="runs of each side per variant (default 2)")
    ap.add_argument("--variant-epochs", type=int, default=5,
                    help="epochs per variant run (default 5)")
    args = ap.parse_args(argv)
    sides = [s for s in args.only.split(",") if s]
    if not sides or set(sides) - set(SIDES):
        ap.error("--only: choose among %s" % ",".join(SIDES))
    variants = [] if args.no_variants else [v for v in args.variants.split(",") if v]
    if set(variants) - set(VARIANTS):
        ap.error("--variants: choose among %s" % ",".join(VARIANTS))
    if args.variant_runs < 1 or args.variant_epochs < 1:
        ap.error("--variant-runs and --variant-epochs: at least 1")
    variant_sides = [s for s in VARIANT_SIDES if s in sides]
    if not variant_sides:
        variants = []
    try:  # the variants' copies of the script, checked before anything runs
        for name in variants:
            with open(os.path.join(args.faithful_dir, "feedforward_lasagne_mnist.py")) as f:
                variant_source(f.read(), name)
    except (OSError, VariantError) as e:
        sys.exit(str(e))

    env = child_env(args.keep_openblas_env)
    was = {v: os.environ.get(v) for v in OPENBLAS_VARS}
    if args.keep_openblas_env:
        blas_env = "kept as found: " + ", ".join("%s=%s" % (k, v) for k, v in was.items())
    else:
        blas_env = "unset for the benchmark's commands (were: %s)" % ", ".join(
            "%s=%s" % (k, "unset" if v is None else v) for k, v in was.items())
    print("bench: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE " + blas_env, flush=True)
    load_start = loadavg()

    pythons = {s: args.faithful_python for s in ("faithful", "stock")}
    for peer in ("torch", "jax"):
        if peer in sides:
            venv, reqs, _ = PEERS[peer]
            pythons[peer] = ensure_venv(args.python3, venv, reqs)
    logs = os.path.join(HERE, "logs")
    os.makedirs(logs, exist_ok=True)

    peaks = {"faithful venv": sgemm(args.faithful_python, env, args.faithful_dir)}
    if "torch" in sides:
        peaks["torch venv"] = sgemm(pythons["torch"], env)
    for name, (g, what) in peaks.items():
        print("bench: sgemm peak, %s (%s): %.0f GFLOP/s" % (name, what, g), flush=True)
    peak = max(g for g, _ in peaks.values())
    limit = sgemm(args.faithful_python, env, args.faithful_dir, net=True)
    print("bench: GEMM-bound limit at the net's shapes (%s): %.3f s per epoch, %.0f GFLOP/s"
          % (limit[2], limit[0], limit[1]), flush=True)

    results = {s: [] for s in SIDES}
    for i in range(args.runs):
        seed = args.seed + i
        for side in sides:
            side_env = dict(env, FLM_SPEEDUPS="0") if side == "stock" else env
            if side in ("faithful", "stock"):
                cmd = [pythons[side], "-c", FAITHFUL_SNIPPET.format(seed=seed, epochs=args.epochs)]
                cwd = args.faithful_dir
            else:
                cmd = [pythons[side], os.path.join(HERE, PEERS[side][2]),
                       "--epochs", str(args.epochs), "--seed", str(seed)]
                cwd = HERE
            log = os.path.join(logs, "%s-run%d.log" % (side, i + 1))
            out, err, wall = run_logged(cmd, cwd, side_env, log, args.timeout)
            r = parse(out, wall, err)
            results[side].append(r)
            print("bench: %-8s run %d/%d seed %d: median epoch %.3fs, total %.1fs, "
                  "compile %s, test %.2f %%" % (side, i + 1, args.runs, seed, r["epoch"], wall,
                                                "–" if r["compile"] is None else
                                                "%.2fs" % r["compile"], r["acc"]), flush=True)

    variant_results, variant_limits = {}, {}
    if variants:
        if "faithful" in variant_sides:
            for name in variants:
                # the tutorial's shapes (adam): the limit measured above
                variant_limits[name] = limit[0] if VARIANTS[name][3] == TUTORIAL_SHAPE else sgemm(
                    args.faithful_python, env, args.faithful_dir, net=True,
                    shape=VARIANTS[name][3])[0]
                print("bench: GEMM-bound limit of variant %s: %.3f s per epoch"
                      % (name, variant_limits[name]), flush=True)
        variant_results = run_variants(variants, variant_sides, pythons, args, env, logs)

    first = None
    if args.first_runs > 0:
        first = first_runs(args.faithful_python, args.faithful_dir, env, args.first_runs,
                           args.epochs, args.seed, args.timeout)

    about = [("date", time.strftime("%Y-%m-%d %H:%M %Z")),
             ("machine", machine()),
             ("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE", blas_env),
             ("load average (1, 5, 15 min) at start / end", "%s / %s" % (load_start, loadavg())),
             ("Theano blas.ldflags", theano_blas(args.faithful_python, args.faithful_dir, env)),
             ("faithful script", os.path.normpath(os.path.join(
                 shown_path(args.faithful_dir), "feedforward_lasagne_mnist.py"))),
             ("sgemm peak (2000x2000, best of 7)", "; ".join(
                 "%s %.0f GFLOP/s (%s)" % (k, g, d) for k, (g, d) in peaks.items())),
             ("GEMM-bound limit", "%.3f s per epoch: the 8 products of a training step x 100 "
              "+ the 3 forward products x 20 validation batches, each at the net's shapes, "
              "best of 30 calls (%s)" % (limit[0], limit[2]))]
    measured = aims(results, limit, first)
    text = table(results, peak, limit, {"epochs": args.epochs, "about": about, "first": first,
                                        "aims": measured})
    if variant_results:
        text += "\n## Variants\n\n" + variant_table(variant_results, variant_limits, {
            "runs": args.variant_runs, "epochs": args.variant_epochs, "sides": variant_sides})
    print()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Benchmark: the faithful Theano/Lasagne script, its stock code paths, "
                    "PyTorch and JAX\n\n"
                    "Written by `make bench` (%s).\n\n" % " ".join(filter(None, [
                        "bench/bench.py", shown_args(argv if argv is not None else sys.argv[1:])]))
                    + text)
        print("bench: table written to %s" % os.path.relpath(args.out))


if __name__ == "__main__":
    main()
