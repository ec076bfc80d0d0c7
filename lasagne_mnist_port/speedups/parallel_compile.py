"""The C modules of a function compiled side by side, with a precompiled header.

Theano 1.0.5 compiles the C module of each op of a function one after the
other, while it makes the function's thunks: for train_fn and val_fn, 24
modules, about half a second each, on one core. Most of that half second is
g++ parsing the same headers again (Python.h, numpy's, <iostream>): a module's
own code is small. A first run (an empty compile cache) spent two thirds of
its time there.

ParallelCompileLinker is Theano's VM linker (the default, "cvm") with one step
added before it makes the thunks: it walks the function's nodes as Theano
will, and for each C module that is not in the compile cache yet it starts
g++ right away, as many at a time as the process has CPUs, into a temporary
directory. The headers every module starts with are compiled once into a
precompiled header, kept in the compile directory for later runs with the
list of files it was made from (made again when one of them changed: numpy,
Python or g++ upgraded), and the modules wait for it (it halves their
compile). One header serves the elementwise ops and the BLAS products alike:
the products' options are the others' plus macros (the BLAS's renames of its
functions), and g++ checks that those occur nowhere in the header. It is
started in the background when the mode is made, or earlier by prepare()
(the command line: while the data loads). Each g++ runs compile_str's own
command without the -g (debug information) and, where g++ has it, with the
gold linker: about a quarter less time, for the same machine code. Then Theano makes
the thunks as always: where it would run g++ on a module, compile_str takes
the one already built from the same source and arguments. Keys, cache
entries and the module files are Theano's own (less their debug
information); a later stock compile of the same op finds them.

And one compile less or two: Theano folds an op whose inputs are all
constants by running it once, through a C module compiled for it unless the
op asks for its Python code (Elemwise does, on scalars). For the ops that
only move data (DimShuffle, ScalarFromTensor: broadcasting a constant, taking
its scalar), fold_data_movement runs their Python code instead, as Elemwise
asks: the same array, and no g++ before the functions' own modules.

Numerically nothing changes: the same source, compiled with the same
options into the same machine code (g++ makes the same code with or without
-g; gold links the same objects), and constants folded to the same arrays.
A precompiled header stands for the exact #include lines the module starts
with, and g++ checks that it was made with the same options and macros
(other macros only where the header's files do not name them), or parses
the headers itself. A module g++ rejects is built again without the header
(and when it then builds, the header is at fault: it is removed, and made
again by a later compile); if it is rejected again, Theano compiles it
itself and reports the error as always, once. Anything else (an op without
C code, no temporary directory) leaves the module to Theano.

Stopping. The g++ of these builds run in sessions of their own, with their
temporary files in the build's folder, and report to their thread, never to
stdout. When the compile ends with an exception (Ctrl-C and SIGTERM are a
KeyboardInterrupt there), and when the process exits, stop() kills those
running and no other starts; a killed g++ is no verdict on the code. A build
folder left by a process that was killed (kill -9) is removed by the next
compile. Compiles in this linker take turns, one thread at a time.
Speed-up 7 of docs/speedups.md.
"""
import atexit
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import theano
import theano.tensor.blas
from theano.gof import cmodule
from theano.gof.cc import CLinker, get_module_cache
from theano.gof.fg import FunctionGraph
from theano.gof.graph import Constant
from theano.gof.opt import local_optimizer
from theano.gof.vm import VM_Linker
from theano.tensor.basic import ScalarFromTensor
from theano.tensor.elemwise import DimShuffle

__all__ = ["ParallelCompileLinker", "linker", "fold_data_movement"]

# A precompiled header is worth making when at least this many modules share
# it: it costs about two modules' compile time, and then halves each one.
PCH_MIN_MODULES = 4
PCH_DIR = "lasagne_mnist_port-pch"
# Part of a header's directory name: 2, made without debug information (-g).
HEADER_VERSION = 2
# The folders the modules are built in, in the temporary directory: the
# process id follows, so that one left by a killed process can be told apart.
BUILD_PREFIX = "lasagne_mnist_port-build-"


def cpus():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Module(object):
    """One C module to build: compile_str's arguments, as CLinker.compile_cmodule passes them."""

    def __init__(self, cl):
        mod = cl.get_dynamic_module()
        src_code = mod.code()  # sets mod.code_hash, the module's name
        self.compiler = cl.c_compiler()
        self.args = dict(module_name=mod.code_hash, src_code=src_code,
                         include_dirs=cl.header_dirs(), lib_dirs=cl.lib_dirs(),
                         libs=cl.libraries(), preargs=cl.compile_args())
        # The #include lines the source starts with (DynamicModule.code
        # writes them first): what a precompiled header can stand for.
        self.includes = tuple(i for i in mod.includes if i)
        self.future = None
        self.messages = b""  # what g++ said about a module it built (warnings)

    @staticmethod
    def signature(args):
        return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(args.items())
                     if k in ("module_name", "src_code", "include_dirs", "lib_dirs", "libs",
                              "preargs"))

    def header_group(self):
        """What a precompiled header for this module must share with it: the
        compiler, its options, include paths and the #include lines up to
        the first one after <numpy/...> (the op's own headers vary). Not
        the libraries: -c compiles without linking."""
        first = []
        for inc in self.includes:
            first.append(inc)
            if inc.startswith("<numpy/arrayscalars.h"):
                break
        else:
            return None
        if first[0] != "<Python.h>":
            return None
        return (self.compiler, tuple(self.args["preargs"]), tuple(self.args["include_dirs"]),
                tuple(first))


def extends(group, base):
    """Whether a module of group may use the precompiled header of base: the
    same compiler, include paths and #include lines, and the same options
    plus only macro definitions (-D) and linker options (-Wl,), e.g. the
    BLAS products' renames of the BLAS functions. g++ checks that those
    macros occur nowhere in the header's files, or parses the headers
    itself."""
    if group is None or base is None or group[0] != base[0] or group[2:] != base[2:]:
        return False
    # base's options must be group's, in their order, with others between
    rest, options = [], iter(base[1])
    wanted = next(options, None)
    for option in group[1]:
        if option == wanted:
            wanted = next(options, None)
        else:
            rest.append(option)
    return wanted is None and all(o.startswith(("-D", "-Wl,")) for o in rest)


# --- Our g++ runs: stoppable, silent ------------------------------------------------
# Theano's compile_str runs g++ through cmodule.output_subprocess_Popen and, when
# g++ fails, writes a report file into the temporary directory and prints its
# name on stdout. In the threads of this module (those with _local.job set),
# run_gxx takes its place: g++ starts only while the job's generation is the
# current one, in a session of its own (stop() kills it with everything it
# started), with its temporary files in the job's folder, and its exit status
# and messages go to the job. compile_str is told that all went well, so it
# neither reports nor prints: the thread reads the verdict from the job.
class Stopped(Exception):
    """The build was stopped (stop()), or its g++ killed by a signal: no
    verdict on the code."""


class Rejected(Exception):
    """g++ rejected the module with and without the precompiled header."""


class Job(object):
    def __init__(self, generation, tmpdir):
        self.generation, self.tmpdir = generation, tmpdir
        self.status, self.stderr = None, b""  # status None: g++ did not run to its end


_local = threading.local()
_lock = threading.Lock()  # guards the three below
_generation = [0]
_running = set()
_theanos_popen = []
_threads = []  # the background threads of in_background()


def run_gxx(command, **params):
    """cmodule.output_subprocess_Popen, for this module's threads as said above."""
    job = getattr(_local, "job", None)
    if job is None:
        return _theanos_popen[0](command, **params)
    command = faster(command)
    with _lock:
        if job.generation != _generation[0]:
            return b"", b"", 0
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True,
                                   env=dict(os.environ, TMPDIR=job.tmpdir))
        _running.add(process)
    try:
        out, err = process.communicate()
    finally:
        with _lock:
            _running.discard(process)
    job.status, job.stderr = process.returncode, err
    return out, b"", 0


_gold = []  # whether g++ links with gold here, once per process


def faster(command):
    """compile_str's g++ command, made cheaper where the machine code stays
    the same: without the -g it puts third (debug information: about a
    sixth of a module's compile; g++ makes the same code with and without
    it), and linked by gold where g++ has it (a quarter of the time of the
    default linker, ld.bfd; it links the same objects, resolving the same
    symbols, with the same RUNPATH)."""
    if command[2:3] == ["-g"]:
        command = command[:2] + command[3:]
    if not _gold:  # asked when the first build starts (by two at most)
        found = links_with_gold()
        with _lock:
            if not _gold:
                _gold.append(found)
    if _gold[0] and not any(a.startswith("-fuse-ld=") for a in command):
        command = command[:1] + ["-fuse-ld=gold"] + command[1:]
    return command


def links_with_gold():
    """Whether g++ -fuse-ld=gold runs gold (binutils' ld.gold is installed)."""
    try:
        return "GNU gold" in subprocess.run(
            [theano.config.cxx, "-fuse-ld=gold", "-Wl,--version"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
            timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False


def install():
    """Puts run_gxx in place, once per process, and stop() at the process's exit."""
    with _lock:
        if not _theanos_popen:
            _theanos_popen.append(cmodule.output_subprocess_Popen)
            cmodule.output_subprocess_Popen = run_gxx
            atexit.register(at_exit)


def stop():
    """No g++ of the builds started so far starts any more; those running are
    killed (SIGKILL to their session: g++, cc1plus, as). Builds started
    afterwards run as usual."""
    with _lock:
        _generation[0] += 1
        for process in _running:
            if process.returncode is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    pass


def at_exit():
    """At the process's exit: stop(), and give the background threads a moment
    to remove their temporary folders (their g++ are gone)."""
    stop()
    for thread in _threads:
        thread.join(timeout=5)


def gxx(compiler, args, generation, tmpdir):
    """compiler.compile_str(**args) in this thread, its g++ run by run_gxx: g++'s
    exit status and messages. Stopped when it was stopped or killed."""
    install()
    _local.job = job = Job(generation, tmpdir)
    try:
        compiler.compile_str(**args)
    finally:
        _local.job = None
    if job.status is None or job.status < 0:
        raise Stopped()
    return job.status, job.stderr


def remove_at_once(path):
    """Moves the directory path out of the way in one step (a process reading
    it sees it whole or not at all), then deletes it."""
    root = os.path.dirname(path)
    stale = tempfile.mkdtemp(prefix=".stale-", dir=root)
    try:
        os.rename(path, os.path.join(stale, "old"))
    except OSError:
        pass  # another process moved it
    shutil.rmtree(stale, ignore_errors=True)


def remove_abandoned_builds():
    """Removes the build folders of processes that no longer run (killed with
    kill -9, they could not)."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        match = re.fullmatch(re.escape(BUILD_PREFIX) + r"(\d+)-\w+", name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
        except OSError:
            pass  # alive, another user's


def header_dir(group):
    """Where the precompiled header of group is kept: a directory of the
    compile directory named after everything the header depends on."""
    compiler, preargs, include_dirs, includes = group
    digest = hashlib.sha256(repr((HEADER_VERSION, compiler.__name__, theano.config.cxx, preargs,
                                  include_dirs, includes)).encode()).hexdigest()[:20]
    return os.path.join(theano.config.compiledir, PCH_DIR, digest)


_cc1plus = []


def compiler_program():
    """The file of g++'s C++ compiler proper (cc1plus), or of g++ itself."""
    if not _cc1plus:
        try:
            path = subprocess.run([theano.config.cxx, "-print-prog-name=cc1plus"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  universal_newlines=True, timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            path = ""
        _cc1plus.append(path if os.path.isabs(path) else shutil.which(theano.config.cxx) or "")
    return _cc1plus[0]


def depends_on(directory):
    """[path, mtime_ns, size] of each file the precompiled header in directory
    was made from: the headers g++ read (its Python.h.d, as for `make`) and
    the compiler itself."""
    with open(os.path.join(directory, "Python.h.d")) as f:
        rule = f.read().replace("\\\n", " ")
    # "target: source header header ...", with spaces and #s in a path escaped
    # by a backslash; the source (its #include lines) is in the directory's name.
    deps = [re.sub(r"\\(.)", r"\1", d)
            for d in re.findall(r"(?:\\.|[^\s\\])+", rule.split(": ", 1)[1])][1:]
    return [[d, st.st_mtime_ns, st.st_size]
            for d, st in ((d, os.stat(d)) for d in deps + [compiler_program()])]


def fresh(directory):
    """Whether directory holds a Python.h.gch made from the files that are
    there now, unchanged: after an upgrade of numpy, Python or g++ it is made
    again (g++ itself checks options and macros, not the headers' contents)."""
    try:
        with open(os.path.join(directory, "Python.h.deps")) as f:
            return os.path.exists(os.path.join(directory, "Python.h.gch")) and \
                json.load(f) == depends_on(directory)
    except (OSError, ValueError, IndexError):
        return False


def build_header(group, generation=None):
    """The directory holding group's fresh `Python.h.gch`, made if need be;
    None when g++ could not make it; Stopped when stopped (generation: of
    stop(), default the current one)."""
    compiler, preargs, include_dirs, includes = group
    if generation is None:
        generation = _generation[0]
    final = header_dir(group)
    if fresh(final):
        return final
    root = os.path.dirname(final)
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(root):  # left by a process that ended while making one
        path = os.path.join(root, name)
        if name.startswith((".tmp-", ".stale-")) and time.time() - os.path.getmtime(path) > 3600:
            shutil.rmtree(path, ignore_errors=True)
    work = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    try:
        # Theano's own command line, as for a module, with "-c -x c++-header":
        # g++ then writes the precompiled header where the .so would go, and
        # the headers it read into Python.h.d.
        status, _ = gxx(compiler, dict(
            module_name="Python.h", src_code="".join("#include %s\n" % inc for inc in includes),
            location=work, include_dirs=list(include_dirs), py_module=False,
            preargs=list(preargs) + ["-c", "-x", "c++-header", "-MD", "-MF",
                                     os.path.join(work, "Python.h.d")]), generation, work)
        if status:
            return None
        os.rename(os.path.join(work, "Python.h." + cmodule.get_lib_extension()),
                  os.path.join(work, "Python.h.gch"))
        with open(os.path.join(work, "Python.h.deps"), "w") as f:
            json.dump(depends_on(work), f)
        if os.path.exists(final):  # stale: out of the way first (a directory at once)
            remove_at_once(final)
        try:
            os.rename(work, final)  # the whole directory at once, or not at all
        except OSError:
            pass  # another process made it first: use theirs
        return final if fresh(final) else None
    except Stopped:
        raise
    except Exception:
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Precompiled headers made or being made in this process, by compile
# directory and group.
_headers = {}


def header(group, submit):
    """A future of build_header(group), started with submit(fn, *args) unless
    already there (made, or being made); started again when it was stopped
    or cancelled, or its header has been removed since (at fault)."""
    compiler_program()  # (its g++ -print-prog-name runs now, in this thread, once)
    key = (theano.config.compiledir, group)
    future = _headers.get(key)
    if future is not None and future.done() and (future.cancelled() or (
            isinstance(future.exception(), Stopped) if future.exception() else
            future.result() is not None and not os.path.isdir(future.result()))):
        future = None
    if future is None:
        _headers[key] = future = submit(build_header, group, _generation[0])
    return future


def in_background(fn, *args):
    """A future of fn(*args), run in a daemon thread: a process that ends
    first does not wait for it (at_exit stops its g++)."""
    future = concurrent.futures.Future()

    def run():
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as e:
                future.set_exception(e)

    thread = threading.Thread(target=run, name="lasagne_mnist_port-pch", daemon=True)
    _threads[:] = [t for t in _threads if t.is_alive()] + [thread]
    thread.start()
    return future


def header_result(future):
    """The directory a header future gives, or None (failed, cancelled);
    Stopped when it was stopped."""
    try:
        return future.result()
    except Stopped:
        raise
    except Exception:
        return None


def start_headers():
    """Starts making, in the background, the precompiled header most modules
    will use, unless it exists: that of an elementwise op, which the BLAS
    products use too (their options add macros only), while the
    expressions are built and optimised, before the first module needs it."""
    install()
    x = theano.tensor.fmatrix()
    try:
        fgraph = FunctionGraph([x], [x * 2])
        group = Module(CLinker().accept(fgraph, no_recycling=[])).header_group()
    except Exception:  # nothing to prepare
        return
    if group is not None and not fresh(header_dir(group)):
        header(group, in_background)


def missing_modules(order):
    """The modules Theano will compile for these nodes, in their order: the
    nodes whose key the compile cache does not hold (as make_c_thunk and
    cthunk_factory would build and look them up)."""
    cache = get_module_cache()
    found = {}
    for node in order:
        try:
            node.op.prepare_node(node, None, None, "c")
            cl = CLinker().accept(FunctionGraph(node.inputs, node.outputs), no_recycling=[])
            key = cl.cmodule_key()
            if key is None or key in cache.entry_from_key:
                continue
            if cmodule.get_module_hash(cl.get_src_code(), key) in cache.module_hash_to_key_data:
                continue
            module = Module(cl)
        except Exception:  # no C code, or anything else: Theano decides, as always
            continue
        found.setdefault(Module.signature(module.args), module)
    return list(found.values())


# One compile in this linker at a time (reentrant: a compile may start
# another, e.g. scan's inner function), so that the compile_str of one is
# never taken for another's or left behind by it.
_compiling = threading.RLock()


@contextlib.contextmanager
def prebuilt(order):
    """Builds the missing modules of these nodes in parallel, and has
    compile_str take them, while the block runs."""
    with _compiling:
        with _prebuilt(order):
            yield


@contextlib.contextmanager
def _prebuilt(order):
    if not theano.config.cxx:
        yield
        return
    modules = missing_modules(order)
    if len(modules) < 2:
        yield
        return
    remove_abandoned_builds()
    try:
        work = tempfile.mkdtemp(prefix="%s%d-" % (BUILD_PREFIX, os.getpid()))
    except OSError:  # no temporary directory to build in: Theano, one by one
        yield
        return
    install()
    generation = _generation[0]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=cpus())
    # The precompiled headers: those started before (start_headers) or kept
    # from an earlier run, and one for each group of options that at least
    # PCH_MIN_MODULES modules can use and no such header serves.
    started = set(g for d, g in _headers if d == theano.config.compiledir)
    groups = set(m.header_group() for m in modules) - {None}
    users = {g: sum(extends(m.header_group(), g) for m in modules) for g in groups | started}
    headers = {}
    for group in sorted(groups, key=lambda g: -users[g]):
        served = any(extends(group, g) for g in set(headers) | started)
        if group in started or fresh(header_dir(group)) or (
                users[group] >= PCH_MIN_MODULES and not served):
            headers[group] = header(group, pool.submit)
    for group in started - set(headers):
        if users[group]:
            headers[group] = header(group, pool.submit)

    def header_of(module):
        """The header a module uses: its own group's, else the one with the
        most options of those it may use."""
        group = module.header_group()
        bases = [g for g in headers if extends(group, g)]
        return headers[group] if group in headers else headers[max(
            bases, key=lambda g: len(g[1]))] if bases else None

    faulty = set()  # precompiled headers that a module failed with and built without

    def build(module, location):
        header = header_of(module)
        # With the precompiled header (waiting for it: it halves the compile),
        # unless it failed: g++ then parses the headers itself; and again
        # without it if g++ rejected the module, so that a failure is g++'s
        # verdict on Theano's own command.
        directory = header_result(header) if header is not None else None
        for include in ([[directory]] if directory and directory not in faulty else []) + [[]]:
            args = dict(module.args, include_dirs=include + list(module.args["include_dirs"]),
                        location=location, py_module=False)
            status, module.messages = gxx(module.compiler, args, generation, work)
            if status == 0:
                if directory and not include and directory not in faulty:
                    faulty.add(directory)  # the header was at fault: made again later
                    remove_at_once(directory)
                return location
        raise Rejected()

    # Longest first: those without a precompiled header (they need not wait
    # for one), then those whose header is ready, then those whose header is
    # still being made; by size.
    def order(m):
        h = header_of(m)
        return (0 if h is None else 1 if h.done() else 2), -len(m.args["src_code"])
    modules.sort(key=order)
    built = {Module.signature(m.args): m for m in modules}
    original = cmodule.GCC_compiler.compile_str

    def compile_str(module_name, src_code, location=None, include_dirs=None, lib_dirs=None,
                    libs=None, preargs=None, py_module=True, hide_symbols=True):
        args = dict(module_name=module_name, src_code=src_code, include_dirs=include_dirs or [],
                    lib_dirs=lib_dirs or [], libs=libs or [], preargs=preargs or [])
        module = built.get(Module.signature(args))
        if module is not None and py_module and hide_symbols and location:
            try:
                # Built: its files. Rejected by g++, or anything else (a
                # file system error): Theano compiles it itself, and reports
                # an error as always.
                done = module.future.result()
                for name in os.listdir(done):
                    shutil.copy2(os.path.join(done, name), os.path.join(location, name))
            except Exception:
                pass
            else:
                if theano.config.cmodule.compilation_warning and module.messages:
                    print(module.messages.decode("utf-8", "replace"))  # as compile_str does
                open(os.path.join(location, "__init__.py"), "w").close()
                return cmodule.dlimport(os.path.join(
                    location, "%s.%s" % (module_name, cmodule.get_lib_extension())))
        return original(module_name, src_code, location=location, include_dirs=include_dirs,
                        lib_dirs=lib_dirs, libs=libs, preargs=preargs, py_module=py_module,
                        hide_symbols=hide_symbols)

    cmodule.GCC_compiler.compile_str = staticmethod(compile_str)
    try:
        for i, module in enumerate(modules):
            location = os.path.join(work, str(i))
            os.mkdir(location)
            module.future = pool.submit(build, module, location)
        yield
    except BaseException:
        # Ctrl-C, SIGTERM or an error: the g++ running are killed and no other
        # starts, including those of the headers made in the background.
        stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        cmodule.GCC_compiler.compile_str = staticmethod(original)
        shutil.rmtree(work, ignore_errors=True)


class ParallelCompileLinker(VM_Linker):
    """Theano's VM linker, building the function's C modules in parallel first."""

    def make_all(self, *args, **kwargs):
        with prebuilt(self.schedule(self.fgraph)):
            return VM_Linker.make_all(self, *args, **kwargs)


def linker(default):
    """A ParallelCompileLinker with the settings of `default` (the mode's
    linker), or `default` itself when it is not a VM linker with C thunks."""
    if type(default) is not VM_Linker or not default.c_thunks or not theano.config.cxx:
        return default
    return ParallelCompileLinker(
        allow_gc=default.allow_gc, use_cloop=default.use_cloop, callback=default.callback,
        callback_input=default.callback_input, lazy=default.lazy,
        schedule=vars(default).get("schedule"),  # set on the instance only when given
        c_thunks=default.c_thunks, allow_partial_eval=default.allow_partial_eval)


DATA_MOVEMENT = (DimShuffle, ScalarFromTensor)


@local_optimizer(list(DATA_MOVEMENT))
def fold_data_movement(node):
    """Theano's constant_folding, with the op's Python code (impl='py'), for
    the ops of DATA_MOVEMENT whose inputs are all constants."""
    if (type(node.op) not in DATA_MOVEMENT or not all(isinstance(i, Constant) for i in node.inputs)
            or not node.op.do_constant_folding(node)):
        return False
    storage_map = {i: [i.data] for i in node.inputs}
    compute_map = {i: [True] for i in node.inputs}
    for o in node.outputs:
        storage_map[o], compute_map[o] = [None], [False]
    node.op.make_thunk(node, storage_map, compute_map, no_recycling=[], impl="py")()
    folded = []
    for o in node.outputs:
        constant = getattr(o.type, "Constant", Constant)(o.type, storage_map[o][0])
        theano.gof.opt.copy_stack_trace(o, constant)
        folded.append(constant)
    return folded


# Where Theano's constant folding is, under this name only: speedups.mode()
# includes it by that name. (A rewrite registered in one of these databases
# is by default also selected by the database's name, which a mode may
# include, e.g. Mode(optimizer=None).including("canonicalize").)
for _db in ("canonicalize", "stabilize", "specialize", "uncanonicalize"):
    if "fold_data_movement" not in theano.compile.optdb[_db].__db__:
        theano.compile.optdb[_db].register("fold_data_movement", fold_data_movement,
                                           use_db_name_as_tag=False)
