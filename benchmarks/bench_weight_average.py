"""One fit, sampled with its final weights and with weight averages of several decays, in several ways.

Fits ``EBMGenerator(image_shape=...)`` on the training images of one set
of ``bench_generator_images.py`` (split, judge and scoring as there) with
``ema_decay=None`` and a callback that keeps an exponential moving average
of the weights per decay in ``--decays`` (a fixed decay from the first
update; the estimator's own ``ema_decay`` starts with a running mean, see
``skebm.engine._ml.ExponentialAverage``), then scores 1,000 samples drawn
from the one fitted model with each set of weights and each variant of
``--variants``: ``START:N_STEPS``, the chains started from the replay
buffer (``bank``, the default of ``sample``) or from fresh noise
(``source``). The rows of one run differ only in how samples are drawn.

Usage::

    python benchmarks/bench_weight_average.py [--data colour] [--set name=value ...]
        [--decays 0.99 0.995] [--variants bank:10 source:100] [--cache DIR] [--jsonl FILE]

Tables 9 and 10 of ``reports/generator_images.md`` (the weight-average
sweep that chose ``ema_decay=0.995``, and the colour set's class coverage).
"""

import argparse
import json
import time

import torch
from skorch.callbacks import Callback

from _common import parse_set
from bench_generator_images import COVERED_SHARE, SEED, evaluate_variant, judge, load_set
from skebm import EBMGenerator


class WeightAverages(Callback):
    """Exponential moving averages of the network's weights, one per decay (kept apart, swapped in on demand)."""

    def __init__(self, decays):
        self.decays = decays

    def on_train_begin(self, net, **kwargs):
        self.averages_ = {d: {k: v.detach().clone() for k, v in net.module_.state_dict().items()} for d in self.decays}

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        with torch.no_grad():
            state = net.module_.state_dict()
            for decay, average in self.averages_.items():
                for k, v in state.items():
                    if v.dtype.is_floating_point:
                        average[k].lerp_(v.detach(), 1 - decay)
                    else:
                        average[k].copy_(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="colour", choices=["digits", "mnist", "colour"])
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="EBMGenerator parameters beside the defaults")
    parser.add_argument("--decays", nargs="*", type=float, default=[0.99, 0.995, 0.998])
    parser.add_argument("--variants", nargs="*", default=["bank:10", "source:100", "source:200"])
    parser.add_argument("--cache", default=None, help="folder of the judge's cache")
    parser.add_argument("--jsonl", default=None, help="append one JSON line per row to this file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X_train, X_test, y_train, y_test, shape, _ = load_set(args.data)
    feat = judge(args.data, X_test, y_test, shape, args.cache)
    params = parse_set(args.set)
    averages = WeightAverages(args.decays)
    gen = EBMGenerator(image_shape=shape, random_state=SEED, callbacks=[averages], **{"ema_decay": None, **params})
    start = time.perf_counter()
    gen.fit(X_train)
    fit_s = time.perf_counter() - start
    print(f"{args.data} fit {params}: {fit_s:.0f} s", flush=True)
    final = {k: v.detach().clone() for k, v in gen.net_.module_.state_dict().items()}
    print(f"\n| weights | chain start | sample n_steps | Frechet | classes (>= {COVERED_SHARE:.0%}) | min / max share |")
    print("|---|---|---:|---:|---:|---:|")
    for weights, state in [("final", final), *((f"average (decay {d})", a) for d, a in averages.averages_.items())]:
        gen.net_.module_.load_state_dict(state)
        for variant in args.variants:
            begin, n_steps = variant.split(":")
            r = evaluate_variant(feat, gen, X_test, variant)
            print(f"| {weights} | {'replay buffer' if begin == 'bank' else 'fresh noise'} | {n_steps} | {r['fd']:.2f} | "
                  f"{r['covered']}/10 | {r['min_share']:.3f} / {r['max_share']:.3f} |", flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps({"data": args.data, "params": repr(params), "weights": weights, "start": begin,
                                        "n_steps": int(n_steps), "fit_s": fit_s, **r}) + "\n")


if __name__ == "__main__":
    main()
