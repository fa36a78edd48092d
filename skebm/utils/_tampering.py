"""Edit files written by :func:`skebm.save` as a hostile user would: for the tests and the bad-input audit.

A file is an 8-byte header length, a JSON header (the tensors' dtypes,
shapes and offsets, and the skebm state as a JSON string under
``__metadata__``) and the tensors' bytes. These helpers take it apart, let
a caller edit the state or the tensors, and write it back as a valid
safetensors file, or build one with any header at all.
"""

import json
import struct

__all__ = ["split_file", "rewrite_file", "raw_file", "entry", "set_entry", "tensor_key"]


def split_file(data):
    """``(header, state, body)`` of a file's bytes: the parsed header, the parsed skebm state, the tensor bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    return header, json.loads(header["__metadata__"]["skebm"]), data[8 + n :]


def rewrite_file(data, edit_state=None, edit_tensors=None):
    """The file's bytes after ``edit_state(state)`` and ``edit_tensors(state, tensors)``: a valid safetensors file."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    _, state, _ = split_file(data)
    tensors = st_load(data)
    if edit_state:
        edit_state(state)
    if edit_tensors:
        edit_tensors(state, tensors)
    return st_save(tensors, metadata={"skebm": json.dumps(state)})


def raw_file(header, body=b""):
    """A file with exactly this header (bytes) and body: what no safetensors writer would produce."""
    return struct.pack("<Q", len(header)) + header + body


def entry(encoded, name):
    """The value of ``name`` in an encoded dict (``{"__dict__": [[key, value], ...]}``)."""
    return dict(map(tuple, encoded["__dict__"]))[name]


def set_entry(encoded, name, value):
    """Set ``name`` in an encoded dict (appended when absent)."""
    for item in encoded["__dict__"]:
        if item[0] == name:
            item[1] = value
            return
    encoded["__dict__"].append([name, value])


def tensor_key(state, *path):
    """The tensor key of a fitted array, e.g. ``tensor_key(state, "rescaler_", "center_")``."""
    value = entry(state["attrs"], path[0])
    for name in path[1:]:
        value = entry(value["state"], name)
    return value["__ndarray__"]["__tensor__"]
