"""The one image-shape rule (skebm/_images.py), as every reader of images applies it."""

import numpy as np
import pytest

from skebm import EBMGenerator
from skebm._images import image_batch_shape
from skebm.metrics import ClassifierFeatures
from skebm.plotting import plot_sample_grid


def test_the_rule():
    assert image_batch_shape(np.zeros((2, 1, 3, 4))) == (1, 3, 4)
    assert image_batch_shape(np.zeros((2, 12)), (1, 3, 4)) == (1, 3, 4)
    assert image_batch_shape(np.zeros((2, 12))) is None
    assert image_batch_shape(np.zeros((2, 16)), infer_square=True) == (1, 4, 4)
    with pytest.raises(ValueError, match="does not match"):
        image_batch_shape(np.zeros((2, 1, 3, 4)), (1, 4, 3))
    with pytest.raises(ValueError, match="needs 12"):
        image_batch_shape(np.zeros((2, 10)), (1, 3, 4))
    with pytest.raises(ValueError, match="Cannot infer"):
        image_batch_shape(np.zeros((2, 10)), infer_square=True)


# every reader of image batches refuses 3-D input with the same message
READERS = {
    "estimator": lambda X: EBMGenerator(max_iter=1).fit(X),
    "metrics": lambda X: ClassifierFeatures(max_epochs=1).fit(X, np.arange(len(X)) % 2),
    "plotting": lambda X: plot_sample_grid(X),
}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_every_reader_refuses_3d_input_alike(reader):
    with pytest.raises(ValueError, match=r"3 dimensions \(6, 8, 8\).*X\[:, None\]"):
        reader(np.zeros((6, 8, 8)))
