"""tools/setup.sh: which Python a new .venv is made from ($PYTHON, then
/usr/bin/python3, python3.11, python3.10 on PATH, else the project-local
Python 3.11), and the one-line refusals. Fake interpreters answer setup's
probe; nothing is installed."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = os.path.join(ROOT, "tools", "setup.sh")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def fake_python(directory, name, version, real=None):
    """A script that answers setup's probe as a Python `version` whose real
    path is `real` (default: the script itself)."""
    os.makedirs(str(directory), exist_ok=True)
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write('#!/bin/sh\necho "%s %s"\n' % (version, real or path))
    os.chmod(path, 0o755)
    return path


def fake_apt_cache(directory, candidate):
    """An apt-cache whose `policy python3` offers `candidate` (None: no package)."""
    os.makedirs(str(directory), exist_ok=True)
    path = os.path.join(str(directory), "apt-cache")
    answer = ("python3:\n  Installed: (none)\n  Candidate: %s\n" % candidate if candidate
              else "N: Unable to locate package python3\n")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nprintf '%s'\n" % answer)
    os.chmod(path, 0o755)


def setup(tmp_path, *args, system="3.13", apt_python3=None, path_dirs=(), setup_sh=SETUP,
          **env):
    """Run setup.sh with a fake system Python of version `system` (None: none),
    a fake apt-cache offering python3 `apt_python3`, and `path_dirs` first on PATH."""
    system_python = (fake_python(tmp_path / "usr-bin", "python3", system) if system
                     else str(tmp_path / "no-such-python3"))
    fake_apt_cache(tmp_path / "apt", apt_python3)
    path_dirs = [tmp_path / "apt"] + list(path_dirs)
    environ = {"PATH": os.pathsep.join([str(d) for d in path_dirs] + ["/usr/bin", "/bin"]),
               "HOME": str(tmp_path), "LANG": "C.UTF-8", "FLM_SYSTEM_PYTHON": system_python}
    environ.update(env)
    return subprocess.run(["bash", setup_sh] + list(args), capture_output=True, text=True,
                          env=environ, timeout=60)


def found(result):
    assert result.returncode == 0, result.stderr
    kind, version, path = result.stdout.rstrip("\n").split(" ", 2)
    return kind, version, path


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, (result.returncode, result.stderr)
    assert lines[0].startswith("setup: ") and result.stdout == ""
    return lines[0]


def test_the_system_python_comes_first(tmp_path):
    fake_python(tmp_path / "bin", "python3.11", "3.11")
    kind, version, path = found(setup(tmp_path, "--find-python", system="3.11",
                                      path_dirs=[tmp_path / "bin"]))
    assert (kind, version, path) == ("system", "3.11", str(tmp_path / "usr-bin" / "python3"))


def test_python311_then_python310_on_path_when_the_system_python_is_too_new(tmp_path):
    bin_dir = tmp_path / "bin"
    p311 = fake_python(bin_dir, "python3.11", "3.11")
    fake_python(bin_dir, "python3.10", "3.10")
    assert found(setup(tmp_path, "--find-python", path_dirs=[bin_dir])) == ("other", "3.11", p311)
    os.remove(p311)
    p310 = fake_python(bin_dir, "python3.10", "3.10")
    other = tmp_path / "other"
    fake_python(other, "python3.11", "3.12")   # a python3.11 that is not one is passed over
    assert found(setup(tmp_path, "--find-python", path_dirs=[other, bin_dir])) == \
        ("other", "3.10", p310)


def test_none_found_means_the_project_local_python(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3.11", "3.12")
    fake_python(bin_dir, "python3.10", "3.13")
    kind, version, path = found(setup(tmp_path, "--find-python", path_dirs=[bin_dir]))
    assert (kind, version) == ("local", "3.11")
    assert path == os.path.join(ROOT, ".python311", "usr", "bin", "python3.11")
    for offered in (None, "3.13.5-1", "3.12.3-0ubuntu2"):   # none installed, none to install
        kind, _, _ = found(setup(tmp_path, "--find-python", system=None, apt_python3=offered,
                                 path_dirs=[bin_dir]))
        assert kind == "local", offered


@pytest.mark.parametrize("offered, version", [("3.11.2-1+b1", "3.11"),
                                               ("3.10.6-1~22.04.1", "3.10")])
def test_the_distributions_python3_when_it_is_not_installed_yet(tmp_path, offered, version):
    # A minimal Debian 12 or Ubuntu 22.04: no /usr/bin/python3, but apt has a 3.11 or 3.10.
    fake_python(tmp_path / "bin", "python3.11", "3.11")
    assert found(setup(tmp_path, "--find-python", system=None, apt_python3=offered,
                       path_dirs=[tmp_path / "bin"])) == \
        ("system", version, str(tmp_path / "no-such-python3"))


def test_PYTHON_wins_when_it_is_a_310_or_311(tmp_path):
    chosen = fake_python(tmp_path / "opt", "python", "3.10")
    fake_python(tmp_path / "bin", "python3.11", "3.11")
    assert found(setup(tmp_path, "--find-python", system="3.11", path_dirs=[tmp_path / "bin"],
                       PYTHON=chosen)) == ("other", "3.10", chosen)


@pytest.mark.parametrize("version", ["3.12", "3.13", "2.7"])
def test_PYTHON_of_another_version_is_refused_in_one_line(tmp_path, version):
    too_new = fake_python(tmp_path / "opt", "python3", version)
    line = one_line_error(setup(tmp_path, "--find-python", system="3.11", PYTHON=too_new))
    assert "PYTHON=%s is Python %s" % (too_new, version) in line
    assert "need Python 3.10 or 3.11" in line and "unset it" in line


def test_PYTHON_that_is_missing_or_no_python_is_refused_in_one_line(tmp_path):
    line = one_line_error(setup(tmp_path, "--find-python", PYTHON="no-such-python3.11"))
    assert "PYTHON=no-such-python3.11: no such program" in line
    not_python = tmp_path / "not-python"
    not_python.write_text("#!/bin/sh\nexit 3\n")
    not_python.chmod(0o755)
    line = one_line_error(setup(tmp_path, "--find-python", PYTHON=str(not_python)))
    assert "does not run as a Python" in line


def test_an_existing_venv_of_another_python_is_not_replaced_silently(tmp_path):
    # A copy of setup.sh in an empty project whose .venv came from /opt/a.
    project = tmp_path / "project"
    os.makedirs(str(project / "tools"))
    shutil.copy(SETUP, str(project / "tools" / "setup.sh"))
    fake_python(project / ".venv" / "bin", "python", "3.11", real="/opt/a/bin/python3.11")
    wanted = fake_python(tmp_path / "opt-b", "python3.11", "3.11")
    line = one_line_error(setup(tmp_path, setup_sh=str(project / "tools" / "setup.sh"),
                                PYTHON=wanted))
    assert ".venv was made from /opt/a/bin/python3.11, not from PYTHON=%s" % wanted in line
    assert "mv .venv .venv.old" in line


def test_unknown_argument(tmp_path):
    assert "unknown argument --frobnicate" in one_line_error(setup(tmp_path, "--frobnicate"))


# --- The names the project's .venv exposes (tests run in that venv) ----------
PUBLIC = ("feedforward_lasagne_mnist", "mnist_loader", "lasagne_mnist_port")
PRIVATE = ("compat", "speedups", "gpu_env", "atomic_file", "training", "cli", "checkpoints",
           "images", "history", "dropout_rng", "fused_updates", "sparse_dot", "column_sum",
           "inline_constants", "tests", "bench", "tools", "docs", "data", "conftest")


def venv_python(code, cwd, **env):
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(cwd), env=environ, timeout=300)


def test_the_venv_exposes_only_the_public_names(tmp_path):
    code = ("import importlib.util as u\n"
            "print([n for n in %r if u.find_spec(n) is None])\n"
            "print([n for n in %r if u.find_spec(n) is not None])\n" % (PUBLIC, PRIVATE))
    result = venv_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"]  # all public found, no private one


def test_a_users_own_compat_and_speedups_are_theirs(tmp_path):
    """In a working directory holding its own compat.py and speedups.py (and with
    another compat.py on PYTHONPATH), those are what `import` gives, and the
    startup hook and the tutorial keep working beside them."""
    for name in ("compat", "speedups", "column_sum"):
        (tmp_path / (name + ".py")).write_text("MINE = %r\n" % name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "compat.py").write_text("raise ImportError('not this one')\n")
    code = ("import compat, speedups, column_sum\n"
            "print(compat.MINE, speedups.MINE, column_sum.MINE)\n"
            "import theano\n"
            "print(theano.config.floatX)\n"
            "import feedforward_lasagne_mnist as flm\n"
            "data = [a[:500] for a in flm.load_data()]\n"
            "network = flm.run_network(data=data, num_epochs=1, batch_size=100, progress=False)\n"
            "print(network.history['epoch'])\n")
    for env in ({}, {"PYTHONPATH": str(elsewhere)}):
        result = venv_python(code, tmp_path, **env)
        assert result.returncode == 0, result.stderr
        out = result.stdout.splitlines()
        assert out[:2] == ["compat speedups column_sum", "float32"], result.stdout
        assert out[-1] == "[1]" and "  test accuracy:" in result.stdout
        assert "speed-ups: on" in result.stderr


# --- Real setups in a copy of the project (an empty requirements.txt: seconds) ---
def project_copy(tmp_path, name="project"):
    dest = tmp_path / name
    (dest / "tools").mkdir(parents=True)
    shutil.copy(SETUP, str(dest / "tools"))
    shutil.copytree(os.path.join(ROOT, "lasagne_mnist_port"), str(dest / "lasagne_mnist_port"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("feedforward_lasagne_mnist.py", "mnist_loader.py"):
        shutil.copy(os.path.join(ROOT, name), str(dest))
    (dest / "requirements.txt").write_text("")
    return dest


def real_env(**env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ.update(env)
    return environ


def real_setup(project, **env):
    return subprocess.run(["bash", str(project / "tools" / "setup.sh")], capture_output=True,
                          text=True, env=real_env(**env), timeout=300)


def venv_runs(project):
    python = str(project / ".venv" / "bin" / "python")
    if not os.path.exists(python):
        return False
    result = subprocess.run([python, "-c", "import pip, lasagne_mnist_port.compat; print('ok')"],
                            capture_output=True, text=True, env=real_env(), timeout=60)
    return result.stdout.strip() == "ok"


def users_package(project):
    """A file standing for a package the user installed into .venv."""
    import glob
    site = glob.glob(str(project / ".venv" / "lib" / "python3*" / "site-packages"))[0]
    return os.path.join(site, "users_own_package.py")


real = pytest.mark.skipif(
    subprocess.run(["bash", SETUP, "--find-python"], capture_output=True, text=True,
                   env=real_env()).stdout.split()[:1] != ["system"],
    reason="needs the system's Python 3.10/3.11 (a project-local build takes minutes)")


@real
@pytest.mark.parametrize("variable, kind, venv", [
    # (with a venv made first: a slow check)
    pytest.param("PYTHONHOME", "conda", True, marks=pytest.mark.slow),
    pytest.param("PYTHONPATH", "numpy", True, marks=pytest.mark.slow),
    ("PYTHONIOENCODING", "bogus", False), ("PYTHONPATH", "encodings", False)])
def test_a_variable_that_breaks_python_is_named_and_nothing_is_touched(tmp_path, variable, kind,
                                                                        venv):
    project = project_copy(tmp_path)
    if venv:
        assert real_setup(project).returncode == 0 and venv_runs(project)
        open(users_package(project), "w").write("")
    before = sorted(set(os.listdir(str(project))) | {".setup.lock"})  # the lock: empty
    value = {"conda": "/opt/conda", "bogus": "bogus"}.get(kind, str(tmp_path / "elsewhere"))
    if variable == "PYTHONPATH":  # a folder holding a numpy, or an encodings, of its own
        os.makedirs(os.path.join(value, kind))
        open(os.path.join(value, kind, "__init__.py"), "w").write("raise ImportError\n")
    result = real_setup(project, **{variable: value})
    line = one_line_error(result)
    assert sorted(os.listdir(str(project))) == before  # nothing else made, moved, removed
    assert line.startswith("setup: %s=%s " % (variable, value)) and "unset %s" % variable in line
    assert "\n" not in line
    if venv:
        assert os.path.exists(users_package(project)) and venv_runs(project)


@real
def test_a_venv_that_does_not_run_is_moved_aside(tmp_path):
    project = project_copy(tmp_path)
    assert real_setup(project).returncode == 0
    open(users_package(project), "w").write("")
    python = project / ".venv" / "bin" / "python"
    os.remove(str(python))
    os.symlink("/nonexistent/python3.11", str(python))  # its Python is gone
    result = real_setup(project)
    assert result.returncode == 0, result.stderr
    aside = [n for n in os.listdir(str(project)) if n.startswith(".venv.broken-")]
    assert len(aside) == 1 and "moved aside to %s" % aside[0] in result.stdout
    assert os.path.exists(users_package(project).replace("/.venv/", "/%s/" % aside[0]))
    assert venv_runs(project)


@real
@pytest.mark.parametrize("step", [pytest.param("creating .venv", marks=pytest.mark.slow),
                                  "installing requirements.txt"])
def test_an_interrupted_setup_is_finished_by_the_next(tmp_path, step):
    """Ctrl-C while .venv is being created, or its packages installed; then make
    setup finishes the job."""
    import signal
    project = project_copy(tmp_path)
    process = subprocess.Popen(["bash", str(project / "tools" / "setup.sh")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=real_env(), start_new_session=True)
    for line in process.stdout:
        if line.startswith("setup: " + step):
            break
    os.killpg(process.pid, signal.SIGINT)  # as the terminal does: the whole group
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert not os.path.exists(str(project / ".venv" / "requirements.installed"))
    result = real_setup(project)
    assert result.returncode == 0, result.stderr
    assert venv_runs(project) and os.path.exists(str(project / ".venv" / "requirements.installed"))
    again = real_setup(project)  # nothing left to do
    assert [l.split(" (")[0] for l in again.stdout.splitlines()] == [
        result.stdout.splitlines()[0].split(" (")[0]]


def pip_starts(project):
    return subprocess.run([str(project / ".venv" / "bin" / "python"), "-m", "pip", "--version"],
                          capture_output=True, text=True, env=real_env(), timeout=60)


@real
def test_a_pip_half_installed_into_a_new_venv_is_finished(tmp_path):
    """A setup stopped while pip installs itself into the new .venv leaves
    pip/__init__.py without the rest: the next setup finds that pip does not
    start, and installs it whole (not only when pip's folder is missing)."""
    import glob
    import zipfile
    wheels = glob.glob("/usr/share/python-wheels/pip-*.whl")
    if not wheels:
        pytest.skip("no pip wheel of the system's to take a part of")
    project = project_copy(tmp_path)
    system_python = subprocess.run(["bash", SETUP, "--find-python"], capture_output=True,
                                   text=True, env=real_env()).stdout.split()[2]
    subprocess.run([system_python, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(project / ".venv")], check=True, env=real_env(), timeout=120)
    site = glob.glob(str(project / ".venv" / "lib" / "python3*" / "site-packages"))[0]
    with zipfile.ZipFile(wheels[0]) as wheel:  # the first file pip unpacks of itself
        wheel.extract("pip/__init__.py", site)
    assert "pip._internal" in pip_starts(project).stderr or pip_starts(project).returncode
    result = real_setup(project)
    assert result.returncode == 0, result.stderr
    assert ".venv has no working pip of its own (an interrupted setup): finishing it" in \
        result.stdout
    assert pip_starts(project).returncode == 0 and venv_runs(project)


@real
def test_two_setups_at_once_wait_for_each_other(tmp_path):
    project = project_copy(tmp_path)
    command = ["bash", str(project / "tools" / "setup.sh")]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=real_env())
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=real_env())
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    said = "".join(out for out, err in outputs)
    assert said.count("creating .venv") == 1
    assert "another make setup is running in this folder: waiting for it to finish" in said
    assert venv_runs(project)


def test_the_startup_hook_imports_next_to_nothing(tmp_path):
    """Every start of the venv's Python runs the hook: it imports its own small
    module and none of the shims, which wait for Theano's import."""
    code = ("import sys\n"
            "print(sorted(m for m in sys.modules if m.startswith(('lasagne', 'theano', 'numpy'))))\n"
            "import theano\n"
            "print('lasagne_mnist_port.compat' in sys.modules, theano.config.floatX)\n")
    result = venv_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['lasagne_mnist_port', 'lasagne_mnist_port.import_hook']", "True float32"]
