"""The loss history that run_network() records in network.history, written
out: a CSV of the epochs (--history) and a plot of the curves (--plot)."""
import csv

import numpy as np

from . import atomic_file

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "epoch_time")


def save_history(history, path):
    def write(f):
        out = csv.writer(f)
        out.writerow(HISTORY_COLUMNS)
        out.writerows(zip(*(history[k] for k in HISTORY_COLUMNS)))
    atomic_file.write(path, write, mode="w")


def plot_history(history, path):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    per_epoch = len(history["batch_loss"]) / max(len(history["epoch"]), 1)
    ax_loss.plot(np.arange(1, len(history["batch_loss"]) + 1) / per_epoch,
                 history["batch_loss"], color="0.75", lw=0.8, label="training (per batch)")
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", label="training")
    ax_loss.plot(history["epoch"], history["val_loss"], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="Loss", yscale="log")
    ax_loss.legend()
    ax_acc.plot(history["epoch"], np.array(history["val_acc"]) * 100, "o-", color="C1")
    ax_acc.set(xlabel="epoch", ylabel="%", title="Validation accuracy")
    ax_acc.grid(alpha=0.3)
    fig.tight_layout()
    atomic_file.write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
