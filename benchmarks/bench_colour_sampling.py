"""The colour set's class coverage: sampling variants and an average of the weights on one default fit.

Fits ``EBMGenerator(image_shape=(3, 32, 32))`` with its defaults on the
4,000 training images of the colour set (split, judge and scoring as in
``bench_generator_images.py``), with a callback that keeps an exponential
moving average of the weights (``--ema``, decay per update), then scores
1,000 samples drawn from the same fitted model in several ways: chains
started as in training (``start=None``: the replay buffer) or from fresh
noise (``start="source"``), with 10 (the default), 30 or 100 Langevin
steps, with the final weights (``online``) and with the averaged weights
(``ema``). One fit, so the rows differ only in how samples are drawn.

Usage::

    python benchmarks/bench_colour_sampling.py [--ema 0.99] [--cache DIR]

This is the table 9 of ``reports/generator_images.md`` (issue 18's
colour-set class coverage, not met).
"""

import argparse
import time

import torch
from skorch.callbacks import Callback

from bench_generator_images import COVERED_SHARE, SEED, evaluate, judge, load_set
from skebm import EBMGenerator

VARIANTS = ((None, 10), (None, 30), (None, 100), ("source", 30), ("source", 100))


class WeightAverage(Callback):
    """Exponential moving average of the network's weights over the updates (kept apart, swapped in on demand)."""

    def __init__(self, decay=0.99):
        self.decay = decay

    def on_train_begin(self, net, **kwargs):
        self.average_ = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        with torch.no_grad():
            for k, v in net.module_.state_dict().items():
                if v.dtype.is_floating_point:
                    self.average_[k].lerp_(v.detach(), 1 - self.decay)
                else:
                    self.average_[k].copy_(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ema", type=float, default=0.99)
    parser.add_argument("--cache", default=None, help="folder of the judge's cache")
    args = parser.parse_args(argv)
    X_train, X_test, y_train, y_test, shape, _ = load_set("colour")
    feat = judge("colour", X_test, y_test, shape, args.cache)
    average = WeightAverage(args.ema)
    gen = EBMGenerator(image_shape=shape, random_state=SEED, callbacks=[average])
    start = time.perf_counter()
    gen.fit(X_train)
    print(f"default colour fit: {time.perf_counter() - start:.0f} s", flush=True)
    online = {k: v.detach().clone() for k, v in gen.net_.module_.state_dict().items()}
    print(f"\n| weights | chain start | sample n_steps | Frechet | classes (>= {COVERED_SHARE:.0%}) | min / max share |")
    print("|---|---|---:|---:|---:|---:|")
    for weights, state in (("final", online), (f"average (decay {args.ema})", average.average_)):
        gen.net_.module_.load_state_dict(state)
        for begin, n_steps in VARIANTS:
            r = evaluate(feat, gen.sample(1000, random_state=SEED, n_steps=n_steps, start=begin), X_test)
            print(f"| {weights} | {'replay buffer' if begin is None else 'fresh noise'} | {n_steps} | {r['fd']:.1f} | "
                  f"{r['covered']}/10 | {r['min_share']:.3f} / {r['max_share']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
