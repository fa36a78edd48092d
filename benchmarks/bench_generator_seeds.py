"""One default EBMGenerator fit per seed on one image set, sampled several ways (tables 11-13 of generator_images.md).

A class at 2-4% of 1,000 samples moves from one fit to the next, so a class-coverage claim needs several seeds. This
script fits ``EBMGenerator(image_shape=..., random_state=SEED, **params)`` on the training images of
``bench_generator_images.py``'s split (the same data, the same cached judge, the same scores) once per ``--seeds``
value, then draws ``N_SAMPLES`` (1,000) samples per ``--variants`` entry (``start:n_steps``, e.g. ``bank:10
bank:30``; ``start`` as in ``sample``; none: ``sample``'s defaults), and prints the Frechet distance, the classes
with at least 3% of the samples and the class counts; with ``--jsonl`` one JSON line per row.

Usage (from ``benchmarks/``)::

    python bench_generator_seeds.py --data colour --seeds 0 1 2 3 --variants bank:15 [--set n_steps=10 ...]
        [--cache DIR] [--jsonl FILE] [--threads N]

Each fit of the colour set takes 10-15 minutes of one core; two runs on two cores take about as long.
"""

import argparse
import json
import time

import torch

from _common import parse_set
from bench_generator_images import evaluate_variant, judge, load_set
from skebm import EBMGenerator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="colour", choices=["digits", "mnist", "colour"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="EBMGenerator parameters")
    parser.add_argument("--variants", nargs="*", default=[], help="start:n_steps per row (default: sample's defaults)")
    parser.add_argument("--cache", default=None, help="folder of the cached judges (bench_generator_images.py --cache)")
    parser.add_argument("--jsonl", default=None, help="append one JSON line per row to this file")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X_train, X_test, _, y_test, shape, _ = load_set(args.data)
    features = judge(args.data, X_test, y_test, shape, args.cache)
    params = parse_set(args.set)
    print("| seed | parameters | sampled | Frechet | classes (>= 3%) | counts | fit s |")
    print("|---:|---|---|---:|---:|---|---:|")
    for seed in args.seeds:
        gen = EBMGenerator(image_shape=shape, random_state=seed, **params)
        start = time.perf_counter()
        gen.fit(X_train)
        fit_s = time.perf_counter() - start
        for variant in args.variants or [None]:
            row = evaluate_variant(features, gen, X_test, variant)
            row.update(seed=seed, params=params, variant=variant or "defaults", fit_s=fit_s)
            print(f"| {seed} | {params or 'defaults'} | {row['variant']} | {row['fd']:.2f} | {row['covered']}/10 | "
                  f"{row['counts']} | {fit_s:.0f} |", flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
