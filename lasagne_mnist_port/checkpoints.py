"""A network's parameters in a plain .npz (no pickle), with the architecture
they belong to ("784-500-300-10"), so that a file of another network is
refused. A file is checked from its .npy headers (names, shapes, dtypes,
sizes) before any array is read: a crafted header cannot make it allocate
gigabytes."""
import io
import os
import re
import zipfile

import lasagne
import numpy as np
import theano

from . import atomic_file

MAX_ARRAY_BYTES = 1 << 26  # the largest array, 784x500 in float64, is 3 MB


class CheckpointError(ValueError):
    """A model file that cannot be loaded into this network."""


def first_line(error):
    """An exception's text, first line only (numpy's can run to several)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def architecture(shapes):
    """The layer sizes, e.g. "784-500-300-10", from the parameters' shapes in
    Lasagne's order (each dense layer's W is 2-D, its b 1-D)."""
    weights = [shape for shape in shapes if len(shape) == 2]
    if not weights:
        return "?"
    return "-".join(str(n) for n in [weights[0][0]] + [shape[1] for shape in weights])


def save_network(network, path):
    values = lasagne.layers.get_all_param_values(network)
    arrays = {"param_%d" % i: v for i, v in enumerate(values)}
    archive = io.BytesIO()  # built in memory (2 MB), so a failing disk only fails the write
    np.savez(archive, architecture=np.array(architecture([v.shape for v in values])), **arrays)
    atomic_file.write(path, lambda f: f.write(archive.getvalue()))


def npz_headers(path):
    """{array name: (shape, dtype)} of an .npz, from the .npy headers alone:
    nothing is allocated for an array before its shape has been checked, and
    no member over MAX_ARRAY_BYTES is read at all."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        if len(archive.infolist()) > 64:  # a model has 7 arrays
            raise ValueError("{} arrays in it".format(len(archive.infolist())))
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):  # not an array: named as extra below
                headers[info.filename] = (None, None)
                continue
            name = info.filename[:-4]
            if info.file_size > MAX_ARRAY_BYTES:  # before reading even its header
                raise ValueError("{} is {} bytes".format(info.filename, info.file_size))
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
            headers[name] = (shape, dtype)
    return headers


def unreadable(path, error):
    return CheckpointError("{}: not a readable .npz model file ({}: {}); save one with "
                           "--save-model".format(path, type(error).__name__, first_line(error)))


def load_parameters(network, path):
    """Sets the network's parameters to those saved in `path`; returns it."""
    params = lasagne.layers.get_all_params(network)
    expected = {"param_%d" % i: p.get_value().shape for i, p in enumerate(params)}
    ours = architecture([p.get_value().shape for p in params])
    not_a_file = ("no such file" if not os.path.lexists(path) else
                  "a directory" if os.path.isdir(path) else
                  "not a regular file" if not os.path.isfile(path) else
                  "not readable" if not os.access(path, os.R_OK) else
                  None if zipfile.is_zipfile(path) else "not a zip archive, as an .npz is")
    if not_a_file:
        raise CheckpointError("{}: {}; save a model with --save-model".format(path, not_a_file))
    try:
        headers = npz_headers(path)
    except Exception as e:  # zipfile/numpy raise many types for a bad file
        raise unreadable(path, e)
    saved = sorted((n for n in headers if re.fullmatch(r"param_(0|[1-9]\d*)", n)),
                   key=lambda n: int(n[6:]))
    extra = sorted(set(headers) - set(saved) - {"architecture"})
    if extra:
        raise CheckpointError("{}: holds {}{} besides a model's arrays: not a model file "
                              "of this script".format(path, ", ".join(extra[:5]), " and {} more"
                                                      .format(len(extra) - 5) if len(extra) > 5
                                                      else ""))
    shapes = [headers[n][0] for n in saved]
    if architecture(shapes) != ours:
        raise CheckpointError("{}: saved from a {} network; this one is {}".format(
            path, architecture(shapes), ours))
    if len(saved) != len(expected) or saved[-1] != "param_%d" % (len(saved) - 1):
        raise CheckpointError("{}: holds {} parameter arrays ({}); this {} network has {}, "
                              "param_0 to param_{}".format(path, len(saved), ", ".join(saved),
                                                           ours, len(expected),
                                                           len(expected) - 1))
    for name in saved:
        if headers[name][0] != expected[name]:
            raise CheckpointError("{}: {} has shape {}, where this {} network's has {}".format(
                path, name, headers[name][0], ours, expected[name]))
    if not all(headers[n][1].kind == "f" for n in expected):
        raise CheckpointError("{}: the parameters are not all floating-point numbers "
                              "({})".format(path, ", ".join(str(headers[n][1])
                                                            for n in sorted(expected))))
    try:  # the shapes are right: now reading is safe
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as e:
        raise unreadable(path, e)
    label = arrays.get("architecture")
    if label is None or label.shape != () or str(label) != ours:
        raise CheckpointError("{}: {}, but its arrays are a {} network's".format(
            path, "not labelled with its architecture" if label is None
            else "labelled as {!r}".format(str(label)[:40]), ours))
    values = [arrays["param_%d" % i].astype(theano.config.floatX)
              for i in range(len(expected))]
    if not all(np.isfinite(v).all() for v in values):  # after the cast: 1e39 is inf in float32
        raise CheckpointError("{}: the parameters are not all finite numbers in {}".format(
            path, theano.config.floatX))
    lasagne.layers.set_all_param_values(network, values)
    return network
