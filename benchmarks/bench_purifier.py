"""EBMPurifier benchmark: robustness of a small CNN on digits, undefended vs purified.

Digits (8x8, scaled to [0, 1]) are split 2/3 train, 1/3 test. A small CNN
(skorch ``NeuralNetClassifier``) is trained normally on clean images; an
EBMPurifier is fitted on the same clean training images. Both are attacked
with L-infinity PGD (random start): the undefended CNN directly, the purified
CNN with BPDA + EOT (``skebm.attacks.evaluate_robustness``). Prints natural and
robust accuracy per epsilon, and purification time per image.

An adversarially trained copy of the same CNN (7-step PGD at eps 0.2,
Madry et al.) is the reference of what a standard defence reaches on this
data.

The purifier is trained with each chain initialisation of ``--inits``
(``"persistent"``: the EBM Life Cycle bank with rejuvenation from the data;
``"data"``: chains started at noise-corrupted data) and evaluated with each
purification length of ``--n-purify-steps``: longer purification removes
more of the perturbation and more of the clean signal.

Run ``python benchmarks/bench_purifier.py`` (full, about 30 minutes on
one CPU core) or with ``--quick`` (a few minutes, fewer test images, updates
and attack steps: numbers are indicative only).
"""

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier
from torch import nn

from skebm import EBMPurifier, PurifiedClassifier
from skebm.attacks import evaluate_robustness, pgd_attack


class SmallCNN(nn.Module):
    """Two 3x3 conv layers, max-pool, two linear layers; flat (n, 64) input."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.head(self.features(x.view(-1, 1, 8, 8)))


def make_classifier(seed, max_epochs):
    torch.manual_seed(seed)
    return NeuralNetClassifier(
        SmallCNN,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=max_epochs,
        batch_size=64,
        train_split=None,
        verbose=0,
    )


def adversarial_training(X, y, eps, n_epochs, seed):
    """Madry-style baseline: the same CNN trained on 7-step PGD examples at ``eps``."""
    torch.manual_seed(seed)
    net = SmallCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    rng = np.random.RandomState(seed)
    for _ in range(n_epochs):
        for idx in torch.randperm(len(Xt)).split(64):
            net.eval()
            x_adv = pgd_attack(
                net, Xt[idx], yt[idx].numpy(), eps=eps, n_steps=7, step_size=eps / 4, bounds=(0, 1),
                random_state=rng.randint(2**31 - 1),
            )
            net.train()
            loss = nn.functional.cross_entropy(net(x_adv), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run, indicative numbers only")
    parser.add_argument("--n-test", type=int, default=None, help="test images attacked")
    parser.add_argument("--max-iter", type=int, default=None, help="purifier updates")
    parser.add_argument("--inits", nargs="+", default=["persistent", "data"], help="purifier chain initialisations")
    parser.add_argument("--n-purify-steps", type=int, nargs="+", default=None, help="purification lengths")
    parser.add_argument("--n-replicates", type=int, default=None, help="replicates of the defended prediction")
    parser.add_argument("--eot-replicates", type=int, default=None, help="replicates per attack step")
    parser.add_argument("--attack-steps", type=int, default=None)
    parser.add_argument("--no-adv-training", action="store_true", help="skip the adversarial-training baseline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    quick = args.quick
    n_test = args.n_test or (50 if quick else 100)
    max_iter = args.max_iter or (300 if quick else 1000)
    purify_steps = args.n_purify_steps or ([100] if quick else [100, 300])
    n_rep = args.n_replicates or 16
    n_eot = args.eot_replicates or 4
    attack_steps = args.attack_steps or (10 if quick else 20)
    epsilons = (0.05, 0.1, 0.2, 0.3)

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1 / 3, stratify=y, random_state=args.seed)
    X_att, y_att = X_test[:n_test], y_test[:n_test]

    t0 = time.perf_counter()
    cnn = make_classifier(args.seed, 15 if quick else 30).fit(X_train, y_train)
    timings = {"CNN training": f"{time.perf_counter() - t0:.1f} s"}
    table = evaluate_robustness(
        cnn, X_att, y_att, epsilons=epsilons, n_steps=attack_steps, bounds=(0.0, 1.0), random_state=args.seed
    )
    full_nat = {"undefended": float(np.mean(cnn.predict(X_test) == y_test))}

    for init in args.inits:
        purifier = EBMPurifier(
            energy="conv",
            image_shape=(1, 8, 8),
            energy_params={"channels": (16, 32, 64)},
            max_iter=max_iter,
            init=init,
            n_replicates=n_rep,
            random_state=args.seed,
        )
        t0 = time.perf_counter()
        purifier.fit(X_train)
        timings[f"purifier training, init={init!r} ({max_iter} updates)"] = f"{time.perf_counter() - t0:.1f} s"
        for k in purify_steps:
            purifier.set_params(n_purify_steps=k)
            name = f"purified ({init}, {k} steps)"
            t0 = time.perf_counter()
            purifier.purify(X_test, n_replicates=1)
            per_image = (time.perf_counter() - t0) / len(X_test)
            timings[f"purification, {name}, one replicate"] = f"{per_image * 1e3:.2f} ms / image"
            timings[f"defended prediction, {name} x {n_rep} replicates"] = f"{per_image * n_rep * 1e3:.2f} ms / image"
            defended = PurifiedClassifier(FrozenEstimator(purifier), FrozenEstimator(cnn), n_replicates=n_rep)
            defended.fit(X_train, y_train)
            t0 = time.perf_counter()
            result = evaluate_robustness(
                defended,
                X_att,
                y_att,
                epsilons=epsilons,
                n_steps=attack_steps,
                eot_replicates=n_eot,
                bounds=(0.0, 1.0),
                random_state=args.seed,
            )
            timings[f"BPDA+EOT evaluation, {name}"] = f"{time.perf_counter() - t0:.1f} s"
            table[name] = result["purified"]
            full_nat[name] = float(np.mean(defended.predict(X_test) == y_test))
            print(f"{name}: done", flush=True)

    if not args.no_adv_training:
        t0 = time.perf_counter()
        adv_net = adversarial_training(X_train, y_train, 0.2, 10 if quick else 40, args.seed)
        timings["adversarial training baseline"] = f"{time.perf_counter() - t0:.1f} s"
        adv = evaluate_robustness(
            adv_net, X_att, y_att, epsilons=epsilons, n_steps=attack_steps, bounds=(0, 1), random_state=args.seed
        )
        table["adversarial training (eps 0.2)"] = adv["undefended"]
        with torch.no_grad():
            adv_pred = adv_net(torch.as_tensor(X_test)).argmax(1).numpy()
        full_nat["adversarial training (eps 0.2)"] = float(np.mean(adv_pred == y_test))

    print(f"\n## EBMPurifier on digits ({'quick' if quick else 'full'} run)\n")
    print(
        f"train {len(X_train)}, test {len(X_test)} (attacked: first {n_test}); L-inf PGD, {attack_steps} steps of "
        f"2.5*eps/{attack_steps}, random start, an input broken at any step stays broken. Purified: BPDA + EOT, "
        f"{n_eot} replicates per attack step, breaks confirmed with the defence's {n_rep} replicates.\n"
    )
    cols = list(table.columns)
    print("| epsilon | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for eps, row in table.iterrows():
        label = "0 (natural)" if eps == 0 else f"{eps:g}"
        print(f"| {label} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    print(f"| natural, all {len(X_test)} test images | " + " | ".join(f"{full_nat[c]:.3f}" for c in cols) + " |")
    print("\n| timing | value |")
    print("|---|---|")
    for key, value in timings.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
