"""tutorial.ipynb runs top to bottom in the project's Python, on a subset
(FLM_NOTEBOOK_QUICK=1), and shows the tutorial's lines and its pictures."""
import os
import re

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "tutorial.ipynb")


def test_the_notebook_runs_and_shows_the_tutorials_lines_and_pictures(monkeypatch, tmp_path):
    monkeypatch.setenv("FLM_NOTEBOOK_QUICK", "1")  # the kernel inherits the environment
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # what the notebook leaves there
    stored = open(NOTEBOOK, "rb").read()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel of this very Python (the venv's), whatever name the file records.
    NotebookClient(notebook, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert open(NOTEBOOK, "rb").read() == stored  # the stored outputs stay as they were
    left = [os.path.join(d, f) for d, _, files in os.walk(str(tmp_path)) for f in files]
    assert not [f for f in left if f.endswith(".npz")], left  # the saved model is gone

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert stdout.count("Starting training...") == 2  # the first run and the retraining
    for line in (r"Epoch 2 of 2 took \d+\.\d{3}s", r"training loss:\t\t\d+\.\d{6}",
                 r"validation accuracy:\t\t\d+\.\d{2} %", r"  test accuracy:\t\t\d+\.\d{2} %",
                 r"same predictions: True"):
        assert re.search(line, stdout), line
    pictures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pictures) >= 5  # digits, two histories, two grids of test digits
