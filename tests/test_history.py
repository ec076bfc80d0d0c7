"""history: the loss history as a CSV and as a plot."""
import csv
import os

from PIL import Image

from lasagne_mnist_port.history import plot_history, save_history


def test_history_csv(trained, tmp_path):
    path = tmp_path / "history.csv"
    save_history(trained.history, str(path))
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "train_loss", "val_loss", "val_acc", "epoch_time"]
    assert [int(r[0]) for r in rows[1:]] == trained.history["epoch"]
    assert [float(r[2]) for r in rows[1:]] == trained.history["val_loss"]
    assert os.listdir(tmp_path) == ["history.csv"]  # no temporary file left


def test_plot_is_a_real_png(trained, tmp_path):
    path = tmp_path / "curves.png"
    plot_history(trained.history, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20000
    with Image.open(path) as image:
        assert image.size == (1000, 400)
        assert len(image.convert("L").getcolors(1 << 16)) > 50  # lines, text, not blank

