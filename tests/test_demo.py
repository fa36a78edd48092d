"""``python -m skebm`` (``make demo``, the README's main job) runs with the estimator's defaults."""

import numpy as np

import skebm.generator
from skebm.__main__ import main


def test_the_demo_runs_with_the_default_max_iter(tmp_path, monkeypatch):
    monkeypatch.setattr(skebm.generator, "_AUTO_MAX_ITER", 3)  # max_iter="auto" resolves to 3 updates on digits
    main(["--out", str(tmp_path), "--quiet", "--n-samples", "4"])
    for name in ("digits_samples_over_training.png", "digits_samples.png", "training_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert np.load(tmp_path / "digits_samples.npy").shape[0] == 4


def test_the_demo_takes_max_iter(tmp_path):
    main(["--out", str(tmp_path), "--quiet", "--n-samples", "4", "--max-iter", "2"])
    assert (tmp_path / "digits_samples.png").exists()
