"""Wall and CPU seconds of a default EBMGenerator fit per image set, for table 7 of ``reports/generator_images.md``.

Run it alone (nothing else on the machine): ``python benchmarks/time_default_fits.py --sets mnist colour``. Each fit
is ``EBMGenerator(image_shape=...)`` with every other parameter at its default (``n_threads="auto"``) on the
training images of ``bench_generator_images.py``'s split, timed with ``time.perf_counter`` and
``time.process_time``. ``--precision fp32 auto`` times each set once per precision, one after the other in one
process (table 12: what ``precision="auto"`` saves, and which precision it took).
"""

import argparse
import time

from bench_generator_images import SEED, load_set
from skebm import EBMGenerator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=["mnist", "colour"])
    parser.add_argument("--precision", nargs="*", default=["fp32"], choices=["fp32", "bf16", "auto"])
    args = parser.parse_args(argv)
    print("| fit | precision (took) | updates | wall s | CPU s |\n|---|---|---:|---:|---:|")
    for name in args.sets:
        X_train, _, _, _, shape, _ = load_set(name)
        for precision in args.precision:
            gen = EBMGenerator(image_shape=shape, precision=precision, random_state=SEED)
            wall, cpu = time.perf_counter(), time.process_time()
            gen.fit(X_train)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"| EBMGenerator(image_shape={shape}), {len(X_train):,} {name} images | {precision} "
                  f"({gen.precision_}) | {gen.n_iter_} | {wall:.0f} | {cpu:.0f} |", flush=True)


if __name__ == "__main__":
    main()
