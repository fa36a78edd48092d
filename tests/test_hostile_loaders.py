"""Hostile files for the data-set loaders: bounded time and memory, one clear error.

Each test writes tiny files into ``tmp_path`` that reproduce one class of
defect found by probing the loaders as a hostile user would (issue 19): a
CIFAR pickle that stands for billions of objects, numpy reconstructors called
with forged arguments, a PNG declaring 60000x60000 pixels, symbolic-link loops
and FIFOs in an image folder, IDX headers announcing more than the file holds.
"""

import os
import pickle
import struct
import sys
import threading
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from sklearn.utils._param_validation import InvalidParameterError

from skebm.datasets import load_cifar10, load_image_folder, load_mnist

MB = 1 << 20
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file system objects")
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's own _reconstruct, as its pickles name it


def _bounded(call, *, seconds=5.0, megabytes=200):
    """Run ``call`` and return the exception it raises, checking generous time and memory bounds."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 (returned and checked by the caller)
        raised = exc
    else:
        raised = None
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes * MB, f"peak {peak / MB:.0f} MB"
    return raised


def _in_thread(call, timeout=30.0):
    """Run ``call`` in a daemon thread; fail (instead of hanging) if it does not return in time."""
    result = {}

    def target():
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result["value"] = call()
            result["warnings"] = [str(w.message) for w in caught]
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"did not return within {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["value"], result["warnings"]


# ---------------------------------------------------------------------------
# CIFAR pickles
# ---------------------------------------------------------------------------
def _cifar_folder(tmp_path, test_batch):
    """A CIFAR-10 folder with a genuine meta file and ``test_batch`` (bytes) as the test batch."""
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 1, b"num_vis": 3072}
    (tmp_path / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    (tmp_path / "test_batch").write_bytes(test_batch)
    return tmp_path


def _batch(**entries):
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
    batch.update({key.encode(): value for key, value in entries.items()})
    return pickle.dumps(batch, protocol=4)


def _refused(tmp_path, payload, match="not a genuine CIFAR file"):
    folder = _cifar_folder(tmp_path, payload)
    exc = _bounded(lambda: load_cifar10(folder, split="test"))
    assert isinstance(exc, ValueError), repr(exc)
    assert str(folder / "test_batch") in str(exc)
    assert match in str(exc), str(exc)
    return exc


class _Reduce:
    """Pickles as ``func(*args)`` (then ``BUILD state``), whatever the pickler would do."""

    def __init__(self, func, args, state=None):
        self.value = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.value


def test_cifar_billion_laughs_is_refused_at_once(tmp_path):
    # ~10 KB standing for 400**12 (2e31) list elements: 12 levels, each a list of 400 references to the level below
    laughs = [0]
    for _ in range(12):
        laughs = [laughs] * 400
    payload = _batch(labels=laughs)
    assert 5_000 < len(payload) < 20_000
    _refused(tmp_path, payload, "referenced twice")


@pytest.mark.parametrize(
    "entries, match",
    [
        ({"labels": [[0]]}, "a list holds a list"),  # nesting without sharing
        ({"labels": ((0,) * 5,) * 5}, "holds a tuple"),  # shared tuples in place of a list
        ({"labels": {b"labels": 1}}, "holds a dict"),  # a dict inside the dict
        ({"filenames": [{1, 2}]}, "refusing the pickle opcode EMPTY_SET"),
        ({"extra": [0]}, "unexpected entry 'extra'"),  # an entry no CIFAR file has
    ],
)
def test_cifar_structure_other_than_cifar_is_refused(tmp_path, entries, match):
    _refused(tmp_path, _batch(**entries), match)


def test_cifar_hash_bomb_key_is_refused(tmp_path):
    # a dict keyed by a shared nested tuple: hashing it would cost 2**60 steps (written by hand: the
    # pickler itself would have to hash it)
    bomb = b"K\x00\x85q\x00"  # t0 = (0,)
    for i in range(1, 61):
        bomb += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i])  # t_i = (t_i-1, t_i-1)
    _refused(tmp_path, b"\x80\x02}" + bomb + b"K\x01s.", "tuples nested more than two levels deep")
    # a flat tuple as a key is refused too: keys are short strings
    _refused(tmp_path, b"\x80\x02}K\x00\x85K\x01s.", "not a short string")


@pytest.mark.parametrize(
    "forged, match",
    [
        # numpy.ndarray((10**6, 10**6)): a terabyte if it were called
        (_Reduce(np.ndarray, ((10**6, 10**6), "u1")), "numpy.ndarray called directly"),
        # numpy's _reconstruct with a huge shape instead of (0,)
        (_Reduce(_RECONSTRUCT, (np.ndarray, (10**6, 10**6), b"b")), "_reconstruct with arguments"),
        # an array whose state announces far more data than the file holds
        (_Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10**6, 3072), np.dtype("u1"), False, b"\0" * 8)),
         "needs 3072000000 bytes but the file holds 8"),
        # an object array (its elements would be arbitrary objects)
        (np.array([1, "x"], dtype=object), "only numeric arrays"),
        # a structured dtype
        (np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]), "only numeric arrays"),
    ],
    ids=["ndarray-call", "reconstruct-shape", "state-size", "object-dtype", "structured-dtype"],
)
def test_cifar_forged_numpy_arguments_are_refused(tmp_path, forged, match):
    _refused(tmp_path, pickle.dumps({b"data": forged, b"labels": [0]}, protocol=2), match)


def test_cifar_declared_length_past_the_end_allocates_nothing(tmp_path):
    # BINBYTES8 announcing 2**40 bytes in a 100-byte file
    payload = b"\x80\x04}(\x8c\x04data\x8e" + struct.pack("<Q", 2**40) + b"\0" * 64
    exc = _refused(tmp_path, payload, "truncated or corrupt")
    assert "2**40" not in str(exc)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\x80\x02" + b"(" * 100_000, "MARKs nested more than"),
        (b"\x80\x02" + b"]" * 100_000, "more than 64 lists and dicts"),
        (b"\x80\x02}q\x00h\x00h\x00.", "a dict is referenced twice"),
        (b"\x80\x02N2.", "opcode DUP"),
        (b"", "empty"),
        (np.random.RandomState(0).bytes(4096), "truncated or corrupt"),
        (b"\x80\x02}q\x00(U\x04dataq\x01]q\x02(K\x00K\x01e", "truncated or corrupt"),
    ],
    ids=["marks", "containers", "shared-dict", "dup", "empty", "random", "no-stop"],
)
def test_cifar_malformed_opcode_streams_are_refused(tmp_path, payload, match):
    exc = _bounded(lambda: load_cifar10(_cifar_folder(tmp_path, payload), split="test"))
    assert isinstance(exc, ValueError) and match in str(exc), repr(exc)
    assert str(tmp_path / "test_batch") in str(exc)


@pytest.mark.slow
def test_cifar_opcode_count_is_capped(tmp_path):
    # 1.5 MB of NONE opcodes: each is cheap, but a file of 100 MB of them would take minutes to walk
    payload = b"\x80\x02]" + b"N" * 1_500_000
    # (tracemalloc makes each opcode several times slower: the bound on time is for the cap, not for speed)
    exc = _bounded(lambda: load_cifar10(_cifar_folder(tmp_path, payload), split="test"), seconds=30)
    assert isinstance(exc, ValueError) and "more than 1000000 pickle opcodes" in str(exc), repr(exc)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_reader_restores_every_protocol_exactly(tmp_path, protocol):
    # the reader interprets numpy's pickles itself: byte orders, dtypes, Fortran order and scalars must survive
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    labels = np.array([3, 7], dtype=">i4")
    batch = {b"data": np.asfortranarray(data), b"labels": labels, b"batch_label": "b", b"filenames": [b"x", "y"]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {"label_names": [f"c{i}" for i in range(10)]}
    (tmp_path / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    cifar = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(cifar.data, data)
    np.testing.assert_array_equal(cifar.target, [3, 7])
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": data, b"labels": [np.int64(1), np.uint8(9)]}, protocol=protocol)
    )
    np.testing.assert_array_equal(load_cifar10(tmp_path, split="test").target, [1, 9])


def test_cifar_class_names_must_be_strings(tmp_path):
    _cifar_folder(tmp_path, _batch())
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": list(range(10))}))
    with pytest.raises(ValueError, match="batches.meta.*list of 10 class names"):
        load_cifar10(tmp_path, split="test")


def _deny(monkeypatch, *denied):
    """Make ``os.open`` and ``os.scandir`` refuse these paths, as for a file or folder without permission
    (chmod cannot do it when the tests run as root)."""
    denied = {os.fspath(p) for p in denied}

    def guard(real):
        def call(path, *args, **kwargs):
            if os.fspath(path) in denied:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "open", guard(os.open))
    monkeypatch.setattr(os, "scandir", guard(os.scandir))


def test_unreadable_files_are_one_value_error(tmp_path, monkeypatch):
    folder = _cifar_folder(tmp_path, _batch())
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x0803, 1, 1, 1) + b"\0")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, 1) + b"\0")
    _deny(monkeypatch, folder / "test_batch", tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(ValueError, match="cannot read .*test_batch: Permission denied"):
        load_cifar10(folder, split="test")
    with pytest.raises(ValueError, match="cannot read .*train-images-idx3-ubyte: Permission denied"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------
def _png(path, value=0, size=(2, 2)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)


def _png_declaring(width, height):
    """A valid PNG header declaring ``width x height`` pixels, with almost no data (a decompression bomb)."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@posix_only
def test_image_folder_symlink_loops_are_entered_once(tmp_path):
    _png(tmp_path / "a" / "1.png", 10)
    _png(tmp_path / "b" / "1.png", 20)
    os.symlink(".", tmp_path / "a" / "loop")  # one loop ...
    os.symlink("..", tmp_path / "b" / "up")  # ... a link back to root ...
    os.makedirs(tmp_path / "a" / "deep")
    os.symlink("../../a", tmp_path / "a" / "deep" / "again")  # ... and a loop two levels down
    folder, caught = _in_thread(lambda: load_image_folder(tmp_path))
    assert [os.path.relpath(p, tmp_path) for p in folder.filenames] == ["a/1.png", "b/1.png"]
    np.testing.assert_array_equal(folder.target, [0, 1])
    assert len(caught) == 1 and "3 folders met before" in caught[0] and "loop" in caught[0]


@posix_only
def test_image_folder_reads_only_regular_files(tmp_path):
    _png(tmp_path / "a" / "1.png")
    os.mkfifo(tmp_path / "a" / "x.png")  # opening it would wait for a writer forever
    os.symlink("missing.png", tmp_path / "a" / "broken.png")
    _png(tmp_path / "a" / "dir.png" / "inside.png", 5)  # a folder with an image name is a folder
    folder, caught = _in_thread(lambda: load_image_folder(tmp_path))
    assert [os.path.relpath(p, tmp_path) for p in folder.filenames] == ["a/1.png", "a/dir.png/inside.png"]
    assert len(caught) == 1
    assert "1 not regular files" in caught[0] and "x.png" in caught[0]
    assert "1 broken links" in caught[0] and "broken.png" in caught[0]


@posix_only
def test_image_folder_never_reads_a_file_twice(tmp_path):
    _png(tmp_path / "a" / "1.png", 10)
    _png(tmp_path / "b" / "2.png", 20)
    os.link(tmp_path / "a" / "1.png", tmp_path / "b" / "hard.png")
    os.symlink("../a/1.png", tmp_path / "b" / "soft.png")
    folder, caught = _in_thread(lambda: load_image_folder(tmp_path))
    assert [os.path.relpath(p, tmp_path) for p in folder.filenames] == ["a/1.png", "b/2.png"]
    assert len(caught) == 1 and "2 files met before under another name" in caught[0]
    # nothing skipped: no warning at all
    os.remove(tmp_path / "b" / "hard.png")
    os.remove(tmp_path / "b" / "soft.png")
    _, caught = _in_thread(lambda: load_image_folder(tmp_path))
    assert caught == []


def test_image_folder_decompression_bomb_is_our_value_error(tmp_path):
    _png(tmp_path / "a" / "ok.png")
    bomb = tmp_path / "a" / "bomb.png"
    bomb.write_bytes(_png_declaring(60000, 60000))
    assert bomb.stat().st_size < 200
    exc = _bounded(lambda: load_image_folder(tmp_path))
    assert isinstance(exc, ValueError) and not isinstance(exc, Image.DecompressionBombError), repr(exc)
    assert str(bomb) in str(exc) and "max_pixels" in str(exc)


def test_image_folder_max_pixels(tmp_path, monkeypatch):
    _png(tmp_path / "a" / "1.png", size=(4, 5))
    with pytest.raises(ValueError, match=r"1.png declares 5x4 = 20 pixels, more than max_pixels=19"):
        load_image_folder(tmp_path, max_pixels=19)
    assert load_image_folder(tmp_path, max_pixels=20).image_shape == (1, 4, 5)
    # the size asked for is bounded too: image_size=(10**5, 10**5) would allocate 10 GB per image
    with pytest.raises(ValueError, match=r"image_size=\(100000, 100000\) .* more than max_pixels="):
        load_image_folder(tmp_path, image_size=10**5)
    assert load_image_folder(tmp_path, image_size=(2, 10), max_pixels=20).image_shape == (1, 2, 10)
    # the default is Pillow's limit, and a larger max_pixels lifts it for this call only
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 8)
    with pytest.raises(ValueError, match="max_pixels"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, max_pixels=100).image_shape == (1, 4, 5)
    assert Image.MAX_IMAGE_PIXELS == 8
    for bad in (0, -1, 2.5, "big", True):
        with pytest.raises(InvalidParameterError, match="max_pixels"):
            load_image_folder(tmp_path, max_pixels=bad)


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n", None], ids=["empty", "signature-only", "truncated"]
)
def test_image_folder_corrupt_images_name_the_file(tmp_path, content):
    _png(tmp_path / "a" / "1.png", size=(30, 30))
    path = tmp_path / "a" / "2.png"
    full = (tmp_path / "a" / "1.png").read_bytes()
    path.write_bytes(full[: len(full) // 2] if content is None else content)
    with pytest.raises(ValueError, match="cannot (read|decode) the image .*2.png"):
        load_image_folder(tmp_path)


def test_image_folder_permission_denied(tmp_path, monkeypatch):
    _png(tmp_path / "a" / "1.png")
    _png(tmp_path / "a" / "closed" / "2.png")
    _deny(monkeypatch, tmp_path / "a" / "closed")
    with pytest.warns(UserWarning, match="1 unreadable folders.*closed") as caught:
        folder = load_image_folder(tmp_path)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert [os.path.relpath(p, tmp_path) for p in folder.filenames] == [os.path.join("a", "1.png")]
    _deny(monkeypatch, tmp_path / "a" / "closed", tmp_path / "a" / "1.png")
    with pytest.raises(ValueError, match="cannot read .*1.png: Permission denied"), pytest.warns(UserWarning):
        load_image_folder(tmp_path)


@pytest.mark.skipif(sys.platform != "linux", reason="file names that are not UTF-8")
def test_image_folder_non_utf8_names(tmp_path):
    os.makedirs(os.path.join(os.fsencode(tmp_path), b"cl\xe9"))
    name = os.path.join(os.fsencode(tmp_path), b"cl\xe9", b"\xff\xfe.png")
    Image.fromarray(np.full((2, 2), 7, dtype=np.uint8)).save(name, format="PNG")
    folder = load_image_folder(tmp_path)
    assert list(folder.target_names) == [os.fsdecode(b"cl\xe9")]
    assert os.fsencode(folder.filenames[0]) == name
    np.testing.assert_array_equal(folder.images, 7)


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------
def _idx(tmp_path, image_header, *, gz=False, body=b""):
    labels = struct.pack(">II", 0x0801, 1) + b"\0"
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    payload = image_header + body
    name = "train-images-idx3-ubyte"
    if gz:
        import gzip

        payload, name = gzip.compress(payload), name + ".gz"
    (tmp_path / name).write_bytes(payload)
    return tmp_path / name


def test_idx_dimensions_overflowing_int64_are_refused(tmp_path):
    # 2**31 * 2**31 * 4 == 2**64: wraps to 0 bytes in int64 arithmetic
    path = _idx(tmp_path, struct.pack(">IIII", 0x0803, 2**31, 2**31, 4))
    exc = _bounded(lambda: load_mnist(tmp_path))
    assert isinstance(exc, ValueError) and str(path) in str(exc) and "18446744073709551616 bytes" in str(exc)


def test_idx_gzip_announcing_more_than_it_can_hold_reads_nothing(tmp_path):
    # 50 KB of gzip holding 50 MB of zeros, whose header announces 100 GB
    path = _idx(tmp_path, struct.pack(">IIII", 0x0803, 100_000, 1000, 1000), gz=True, body=bytes(50 * MB))
    assert path.stat().st_size < 100_000
    exc = _bounded(lambda: load_mnist(tmp_path), seconds=5, megabytes=20)
    assert isinstance(exc, ValueError) and str(path) in str(exc) and "can hold at most" in str(exc)
