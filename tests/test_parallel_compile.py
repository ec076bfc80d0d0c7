"""parallel_compile: a function's C modules built side by side, with a
precompiled header, into Theano's own cache under Theano's own keys."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import theano
import theano.tensor as T
from theano.gof import Constant
from theano.gof.vm import VM_Linker

from conftest import ROOT
from lasagne_mnist_port.speedups import parallel_compile

# Runs in a child process with an empty compile directory: every module is new.
CHILD = r"""
import glob, json, os, tempfile
import numpy as np
import pytest
import theano, theano.tensor as T
from theano.gof import cmodule
from theano.gof.cc import CLinker
from theano.gof.fg import FunctionGraph
from lasagne_mnist_port.speedups import parallel_compile

calls = []
compile_str = cmodule.GCC_compiler.compile_str

def counted(module_name, src_code, **kwargs):
    calls.append([module_name, kwargs.get("py_module", True)])
    return compile_str(module_name, src_code, **kwargs)

cmodule.GCC_compiler.compile_str = staticmethod(counted)
commands = []  # the g++ commands of the linker's builds
faster = parallel_compile.faster

def noted(command):
    commands.append(faster(command))
    return commands[-1]

parallel_compile.faster = noted
make_all = parallel_compile.ParallelCompileLinker.make_all

def marked(self, *args, **kwargs):  # where the linker's work starts
    calls.append(["make_all", None])
    return make_all(self, *args, **kwargs)

parallel_compile.ParallelCompileLinker.make_all = marked
stock = theano.compile.get_default_mode()
parallel_compile.start_headers()  # as speedups.mode() does
mode = theano.compile.Mode(linker=parallel_compile.linker(stock.linker),
                           optimizer=stock.provided_optimizer)
x, y = T.fmatrices("x", "y")
outputs = [T.tanh(x * y) + 3, (x - 2 * y).sum(axis=0), T.dot(x, y.T), T.nlinalg.matrix_inverse(x)]
f = theano.function([x, y], outputs, mode=mode)
during = list(calls)
del calls[:]
g = theano.function([x, y], outputs)  # stock: finds the same modules
after_stock = list(calls)
a, b = np.random.RandomState(0).rand(2, 4, 4).astype("float32") + np.eye(4, dtype="float32")
same = all(np.array_equal(u, v) for u, v in zip(f(a, b), g(a, b)))

# The C modules of the function's nodes, by name.
def module(node):
    fgraph = FunctionGraph(node.inputs, node.outputs)
    return parallel_compile.Module(CLinker().accept(fgraph, no_recycling=[]))
names = []
for node in f.maker.fgraph.toposort():
    try:
        names.append(module(node).args["module_name"])
    except (NotImplementedError, theano.gof.utils.MethodNotDefined):  # no C code
        names.append(None)

# The precompiled header (elementwise ops), and g++ accepting it, in the
# linker's builds, for an elementwise module and for a BLAS product's, whose
# options add the BLAS's macros.
for future in parallel_compile._headers.values():
    future.result()
headers = glob.glob(os.path.join(theano.config.compiledir, "lasagne_mnist_port-pch", "*",
                                 "Python.h.gch"))
nodes = f.maker.fgraph.toposort()
elemwise = module([n for n in nodes if "Elemwise" in str(n.op)][0])
blas = module([n for n in nodes if "Dot22" in str(n.op)][0])
accepted = []
for m in (elemwise, blas):
    args = dict(m.args, include_dirs=[parallel_compile.header_dir(elemwise.header_group())]
                + m.args["include_dirs"], preargs=m.args["preargs"] + ["-Werror=invalid-pch"],
                location=tempfile.mkdtemp(), py_module=False)
    accepted.append(parallel_compile.gxx(m.compiler, args, parallel_compile._generation[0],
                                         args["location"])[0] == 0)
extends = [parallel_compile.extends(blas.header_group(), elemwise.header_group()),
           parallel_compile.extends(elemwise.header_group(), blas.header_group())]

# C code that does not compile: the same error as without the linker.
class Broken(theano.gof.Op):
    __props__ = ()
    def make_node(self, v):
        return theano.gof.Apply(self, [v], [v.type()])
    def perform(self, node, inputs, outputs):
        outputs[0][0] = inputs[0]
    def c_code(self, node, name, inputs, outputs, sub):
        return "this is not C;"
    def c_code_cache_version(self):
        return (1,)
errors = []
for m in (mode, None):
    try:
        theano.function([x], [Broken()(x) * 5, T.exp(x) * 7], mode=m)
        errors.append("")
    except Exception as e:
        errors.append("%s: %s" % (type(e).__name__, "Compilation failed" in str(e)))
restored = cmodule.GCC_compiler.compile_str is counted
print(json.dumps(dict(names=names, restored=restored, during=during, after_stock=after_stock, same=same, headers=headers,
                      magic=[open(h, "rb").read(4).decode("latin-1") for h in headers],
                      errors=errors, accepted=accepted, extends=extends, commands=commands,
                      gold=parallel_compile.links_with_gold())))
"""


def test_modules_built_in_parallel_into_theanos_cache(tmp_path):
    env = dict(os.environ, THEANO_FLAGS="compiledir=%s" % (tmp_path / "compiledir"))
    p = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    start = r["during"].index(["make_all", None])
    before = [name for name, _ in r["during"][:start]]  # Theano's optimizer folding constants
    built = [name for name, py_module in r["during"][start:] if not py_module]
    theano_compiled = [name for name, py_module in r["during"][start:] if py_module]
    # Every C module of the function's nodes that the optimizer had not
    # compiled already was built ahead, none by Theano while making thunks.
    # The matrix inverse has no C code: Python's perform, as in stock Theano.
    modules = set(name for name in r["names"] if name) - set(before)
    assert len(modules) >= 3 and r["names"].count(None) == 1
    assert modules <= set(built) and theano_compiled == []
    # A stock compile of the same graph finds them all in the cache.
    assert r["after_stock"] == [] and r["same"]
    # One precompiled header, a real one, that g++ accepts (-Werror=invalid-pch)
    # for the elementwise ops and, with the BLAS's macros added, the product.
    assert r["magic"] == ["gpch"] and r["accepted"] == [True, True]
    assert r["extends"] == [True, False]
    # The builds' g++ commands: compile_str's, without its -g, linked by gold
    # where g++ has it (Theano's own command has -g third).
    assert len(r["commands"]) >= len(modules) + 1 and all(
        "-g" not in c and ("-fuse-ld=gold" in c) == r["gold"] for c in r["commands"])
    # C code that does not compile fails the same way with or without it, and
    # is reported once each time (Theano's "You can find the C code in ...").
    assert r["errors"] == ["Exception: True", "Exception: True"] and r["restored"]
    assert p.stdout.count("You can find the C code") == 2


def test_a_header_serves_the_modules_whose_options_add_only_macros():
    """A precompiled header is used by modules of other options when theirs
    are the header's in the same order plus macro definitions (-D) and
    linker options (-Wl,) only: g++ then checks the macros. Any other
    option (an optimisation, a code generation flag) needs its own."""
    cc = theano.gof.cmodule.GCC_compiler
    base = (cc, ("-O3", "-march=x"), ("/inc",), ("<Python.h>", "<numpy/arrayscalars.h>"))

    def group(*options, **changes):
        g = dict(zip(("compiler", "options", "dirs", "includes"), base), options=options)
        g.update(changes)
        return (g["compiler"], g["options"], g["dirs"], g["includes"])
    assert parallel_compile.extends(base, base)
    assert parallel_compile.extends(group("-Da_=b_", "-O3", "-Wl,-rpath,/lib", "-march=x",
                                          "-Dc_=d_"), base)
    assert not parallel_compile.extends(group("-O3", "-march=x", "-ffp-contract=off"), base)
    assert not parallel_compile.extends(group("-march=x", "-O3"), base)
    assert not parallel_compile.extends(group("-O3"), base)
    assert not parallel_compile.extends(group("-O3", "-march=x", dirs=("/other",)), base)
    assert not parallel_compile.extends(group("-O3", "-march=x", includes=("<Python.h>",)), base)
    assert not parallel_compile.extends(None, base)


def test_only_the_speedups_mode_gets_it():
    """The default mode keeps Theano's linker; a mode that is not a VM with C
    thunks keeps its own."""
    default = theano.compile.get_default_mode()
    assert type(default.linker) is VM_Linker
    assert type(parallel_compile.linker(default.linker)) is parallel_compile.ParallelCompileLinker
    python = theano.compile.Mode(linker="py").linker
    assert parallel_compile.linker(python) is python
    no_c = VM_Linker(c_thunks=False)
    assert parallel_compile.linker(no_c) is no_c


PREPARE = r"""
import glob, json, os
import theano
from lasagne_mnist_port import speedups
from lasagne_mnist_port.speedups import parallel_compile
speedups.prepare(False)
off = len(parallel_compile._headers)
speedups.prepare()
for future in parallel_compile._headers.values():
    future.result()
print(json.dumps([off, len(glob.glob(os.path.join(theano.config.compiledir,
                                                   "lasagne_mnist_port-pch", "*", "Python.h.gch")))]))
"""


def test_prepare_makes_the_header_ahead(tmp_path):
    """What the command line starts before loading the data: the precompiled
    header of the elementwise ops (and the BLAS products); nothing when the
    speed-ups are off."""
    env = dict(os.environ, THEANO_FLAGS="compiledir=%s" % (tmp_path / "compiledir"))
    p = subprocess.run([sys.executable, "-c", PREPARE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [0, 1]


def test_constants_of_data_movement_ops_fold_to_the_same_arrays():
    """fold_data_movement gives the constants stock constant folding gives
    (DimShuffle and ScalarFromTensor of constants), through Python code."""
    c = T.constant(np.arange(12, dtype="float32").reshape(3, 4) / 7)
    i = T.constant(np.int64(2))
    for expr, op in ((c.dimshuffle(1, "x", 0), "DimShuffle"),
                     (T.basic.scalar_from_tensor(i), "ScalarFromTensor")):
        node = expr.owner
        assert type(node.op).__name__ == op and all(isinstance(v, Constant) for v in node.inputs)
        folded, = parallel_compile.fold_data_movement.transform(node)
        stock, = theano.tensor.opt.constant_folding.transform(node)
        assert isinstance(folded, Constant) and folded.type == stock.type
        np.testing.assert_array_equal(np.asarray(folded.data), np.asarray(stock.data))
    x = T.fmatrix()
    assert parallel_compile.fold_data_movement.transform((x.T).owner) is False  # not a constant
    f = theano.function([x], x * c.T, mode=theano.compile.get_default_mode().including(
        "fold_data_movement"))
    g = theano.function([x], x * c.T)
    a = np.random.RandomState(0).rand(4, 3).astype("float32")
    np.testing.assert_array_equal(f(a), g(a))


STALE = r"""
import json, os, sys
import theano
from theano.gof.cc import CLinker
from theano.gof.fg import FunctionGraph
from lasagne_mnist_port.speedups import parallel_compile as pc

x = theano.tensor.fmatrix()
compiler, preargs, include_dirs, includes = pc.Module(CLinker().accept(
    FunctionGraph([x], [x * 2]), no_recycling=[])).header_group()
fake = os.path.join(sys.argv[1], "numpy", "arrayscalars.h")  # found before numpy's own
os.makedirs(os.path.dirname(fake))
open(fake, "w").write("#define ONE_OF_NUMPYS_HEADERS 1\n")
group = (compiler, preargs, (sys.argv[1],) + include_dirs, includes)
made = pc.build_header(group)
before = pc.fresh(made)
open(fake, "w").write("#define ONE_OF_NUMPYS_HEADERS 2 /* upgraded */\n")
after = pc.fresh(made)
again = pc.build_header(group)
print(json.dumps([made == again, before, after, pc.fresh(again),
                  [d[0] for d in pc.depends_on(again)].count(fake)]))
"""


def test_a_header_changed_since_is_made_again(tmp_path):
    """A kept precompiled header whose headers changed (numpy, Python or g++
    upgraded in place) is stale and made again."""
    env = dict(os.environ, THEANO_FLAGS="compiledir=%s" % (tmp_path / "compiledir"))
    p = subprocess.run([sys.executable, "-c", STALE, str(tmp_path / "include")], cwd=ROOT,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [True, True, False, True, 1]


# --- Stopping: a signal, kill -9, a faulty header, two threads ----------------
# The tests that each cost several seconds of cold compiling are marked slow
# (make test-slow; docs/speedups.md).

def gxx_logger(tmp_path):
    """A g++ that notes each start (time, process id, arguments) in a log, then
    runs g++: THEANO_FLAGS=cxx=<it>."""
    log = tmp_path / "g++.log"
    script = tmp_path / "g++"
    script.write_text('#!/bin/sh\necho "$(date +%%s.%%N) $$ $*" >> %s\nexec g++ "$@"\n' % log)
    script.chmod(0o755)
    return str(script), log


def gxx_starts(log):
    """[(time, pid, arguments)] of each g++ started, from the log."""
    if not log.exists():
        return []
    return [(float(t), int(pid), rest) for t, pid, rest in
            (line.split(" ", 2) for line in log.read_text().splitlines())]


def process_groups():
    """The process group of every process of the machine that runs (not a
    zombie, which a container's init may leave unreaped)."""
    groups = set()
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                state, _, group = f.read().rsplit(")", 1)[1].split()[:3]
            if state != "Z":
                groups.add(int(group))
        except (OSError, ValueError):
            pass
    return groups


def cold_cli_run(tmp_path, *args):
    """The command line in a process group of its own (as a shell starts a
    job), with an empty compile directory, a g++ that logs its starts, and a
    temporary directory of its own; and the log."""
    import signal
    cxx, log = gxx_logger(tmp_path)
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), PYTHONUNBUFFERED="1",
               THEANO_FLAGS="compiledir=%s,cxx=%s" % (tmp_path / "compiledir", cxx))
    env.pop("FLM_SPEEDUPS", None)
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py"), "--epochs", "1",
         "--limit", "500", "--no-progress"] + list(args), cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return process, log


def wait_for_a_module_build(process, log):
    """Until a g++ of the speed-ups' build folder runs (the cold compile of
    train_fn and val_fn is under way)."""
    import time
    while process.poll() is None and not any(
            parallel_compile.BUILD_PREFIX in args for _, _, args in gxx_starts(log)):
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()


@pytest.mark.parametrize("signame, to_group, status", [
    ("SIGINT", True, 130),  # Ctrl-C
    pytest.param("SIGTERM", False, 143, marks=pytest.mark.slow)])  # the same KeyboardInterrupt, from cli.py
def test_a_signal_during_a_cold_compile_stops_it_at_once(tmp_path, signame, to_group, status):
    """Ctrl-C (SIGINT to the whole job, as a terminal sends it) or SIGTERM (to
    the process) while the modules build: no g++ starts after it, those
    running are gone when the process has exited, stdout has the tutorial's
    lines only, and the temporary directory is left empty of reports and
    build folders."""
    import signal
    import time
    process, log = cold_cli_run(tmp_path)
    wait_for_a_module_build(process, log)
    sent = time.time()
    if to_group:
        os.killpg(process.pid, getattr(signal, signame))
    else:
        process.send_signal(getattr(signal, signame))
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    starts = gxx_starts(log)
    # The signal reaches the main thread within microseconds: a g++ of a
    # thread that finished its last one in between would be logged then.
    assert [s for s in starts if s[0] > sent + 0.2] == [], (sent, starts)
    # The g++ of the builds run in sessions of their own: none is left.
    left_running = process_groups() & {pid for _, pid, _ in starts}
    assert not left_running, (starts, left_running)
    assert "You can find the C code" not in out + err and "Traceback" not in err
    assert set(out.splitlines()) <= {"Loading data...", "",
                                     "Interrupted: returning the network trained so far."}
    left = os.listdir(str(tmp_path / "tmp"))
    assert [n for n in left if n.startswith(("theano_compilation_error_",
                                             parallel_compile.BUILD_PREFIX))] == [], left


@pytest.mark.slow
def test_a_build_folder_left_by_kill_9_is_removed_by_the_next_compile(tmp_path):
    """kill -9 during the builds leaves their folder; the next compile in the
    speed-ups' linker removes it (its process is gone), and no other."""
    import signal
    process, log = cold_cli_run(tmp_path)
    wait_for_a_module_build(process, log)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    tmp = tmp_path / "tmp"
    left = [n for n in os.listdir(str(tmp)) if n.startswith(parallel_compile.BUILD_PREFIX)]
    assert len(left) == 1
    alive = tmp / ("%s%d-abc" % (parallel_compile.BUILD_PREFIX, os.getpid()))  # this test's
    alive.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp),
               THEANO_FLAGS="compiledir=%s" % (tmp_path / "compiledir"))
    p = subprocess.run([sys.executable, "-c", TWO_MODULES], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert os.listdir(str(tmp)) == [alive.name]


# A function of two C modules that the compile directory does not hold yet,
# compiled in the speed-ups' linker; what it left patched; its results.
TWO_MODULES = r"""
import json, sys
import numpy as np, theano, theano.tensor as T
from theano.gof import cmodule
from lasagne_mnist_port.speedups import parallel_compile
stock = theano.compile.get_default_mode()
mode = theano.compile.Mode(linker=parallel_compile.linker(stock.linker),
                           optimizer=stock.provided_optimizer)
x = T.fmatrix()
f = theano.function([x], [T.tanh(x) * 3 + 1, T.exp(x).sum(axis=0)], mode=mode)
print(json.dumps([float(v.sum()) for v in f(np.ones((3, 3), "float32"))]))
"""


FAULTY_HEADER = r"""
import json, os
import numpy as np, theano, theano.tensor as T
from theano.gof.cc import CLinker
from theano.gof.fg import FunctionGraph
from lasagne_mnist_port.speedups import parallel_compile as pc
x = T.fmatrix()
outputs = [T.tanh(x) * 3 + 1, T.exp(x) * 2 - x]
groups = [pc.Module(CLinker().accept(FunctionGraph([x], [o]), no_recycling=[])).header_group()
          for o in outputs]
made = pc.build_header(groups[0])
gch = os.path.join(made, "Python.h.gch")
with open(gch, "r+b") as f:  # damaged in the middle: g++ fails with it
    f.seek(os.path.getsize(gch) // 2)
    f.write(b"\xff" * 65536)
stock = theano.compile.get_default_mode()
mode = theano.compile.Mode(linker=pc.linker(stock.linker), optimizer=stock.provided_optimizer)
f = theano.function([x], outputs, mode=mode)
a = np.linspace(-1, 1, 12).reshape(3, 4).astype("float32")
print(json.dumps([groups[0] == groups[1], pc.fresh(made) and os.path.exists(made),
                  all(np.array_equal(u, v) for u, v in zip(f(a), theano.function([x], outputs)(a)))]))
"""


def test_a_header_that_g_plus_plus_fails_with_is_removed(tmp_path):
    """A precompiled header that g++ fails with (damaged), while the modules
    build without it: removed, so that later compiles make it again instead
    of failing with it first."""
    env = dict(os.environ, THEANO_FLAGS="compiledir=%s" % (tmp_path / "compiledir"))
    p = subprocess.run([sys.executable, "-c", FAULTY_HEADER], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [True, False, True]


TWO_THREADS = r"""
import json, sys, threading
import numpy as np, theano, theano.tensor as T
from theano.gof import cmodule
from lasagne_mnist_port.speedups import parallel_compile as pc
stock = theano.compile.get_default_mode()
mode = theano.compile.Mode(linker=pc.linker(stock.linker), optimizer=stock.provided_optimizer)
before = [cmodule.GCC_compiler.compile_str, sys.stdout]
a = np.linspace(-1, 1, 12).reshape(3, 4).astype("float32")
results = {}

def compile_and_run(name, outputs):
    try:
        results[name] = [float(v.sum()) for v in theano.function([x], outputs, mode=mode)(a)]
    except Exception as e:
        results[name] = repr(e)

# No constants in the graphs: Theano's optimizer folds a constant by compiling
# a module of its own, straight into the cache, and two threads doing that at
# once trip the cache's bookkeeping (`assert key not in self.keys`), with or
# without the speed-ups. What is tested here is the linker's compiles.
x = T.fmatrix()
threads = [threading.Thread(target=compile_and_run, args=("tanh", [T.tanh(x) + T.exp(x), T.exp(x) - x])),
           threading.Thread(target=compile_and_run, args=("sin", [T.sin(x) * T.cos(x), T.cos(x).sum(axis=1)]))]
for t in threads:
    t.start()
for t in threads:
    t.join()
expected = {"tanh": [float(v.sum()) for v in (np.tanh(a) + np.exp(a), np.exp(a) - a)],
            "sin": [float(v.sum()) for v in (np.sin(a) * np.cos(a), np.cos(a).sum(axis=1))]}
print(json.dumps([[cmodule.GCC_compiler.compile_str, sys.stdout] == before,
                  {k: np.allclose(results[k], expected[k], rtol=1e-5, atol=1e-5) or results[k] for k in results}]))
"""


@pytest.mark.slow
def test_two_threads_compiling_at_once(tmp_path):
    """Two threads compile in the speed-ups' linker at the same time, with an
    empty compile directory: the compiles take turns, both functions work, and
    compile_str and sys.stdout are Theano's and Python's afterwards."""
    env = dict(os.environ, THEANO_FLAGS="compiledir=%s" % (tmp_path / "compiledir"))
    p = subprocess.run([sys.executable, "-c", TWO_THREADS], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [True, {"tanh": True, "sin": True}]


def test_a_header_g_plus_plus_rejects_in_the_background_prints_nothing(tmp_path):
    """The precompiled headers started in the background (prepare()): when g++
    rejects one, nothing reaches stdout and no report file is left; the
    modules then parse the headers themselves."""
    script = tmp_path / "g++"
    script.write_text('#!/bin/sh\ncase "$*" in *c++-header*) echo no >&2; exit 1;; esac\n'
                      'exec g++ "$@"\n')
    script.chmod(0o755)
    (tmp_path / "tmp").mkdir()
    code = ("from lasagne_mnist_port.speedups import parallel_compile as pc\n"
            "pc.start_headers()\n"
            "print(sorted(str(f.result()) for f in pc._headers.values()))\n")
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"),
               THEANO_FLAGS="compiledir=%s,cxx=%s" % (tmp_path / "compiledir", script))
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "['None']\n"  # rejected, and nothing else printed
    assert os.listdir(str(tmp_path / "tmp")) == []
