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

Run ``python benchmarks/bench_purifier.py`` (full, about 20-30 minutes on
2 CPU cores) or with ``--quick`` (a few minutes, fewer test images, updates
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
    parser.add_argument("--n-purify-steps", type=int, default=None)
    parser.add_argument("--n-replicates", type=int, default=None, help="replicates of the defended prediction")
    parser.add_argument("--eot-replicates", type=int, default=None, help="replicates per attack step")
    parser.add_argument("--attack-steps", type=int, default=None)
    parser.add_argument("--no-adv-training", action="store_true", help="skip the adversarial-training baseline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    quick = args.quick
    n_test = args.n_test or (50 if quick else 200)
    max_iter = args.max_iter or (300 if quick else 1000)
    n_purify = args.n_purify_steps or 100
    n_rep = args.n_replicates or 16
    n_eot = args.eot_replicates or (4 if quick else 8)
    attack_steps = args.attack_steps or (10 if quick else 40)
    epsilons = (0.05, 0.1, 0.2, 0.3)

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1 / 3, stratify=y, random_state=args.seed)
    X_att, y_att = X_test[:n_test], y_test[:n_test]

    t0 = time.perf_counter()
    cnn = make_classifier(args.seed, 15 if quick else 30).fit(X_train, y_train)
    t_cnn = time.perf_counter() - t0

    purifier = EBMPurifier(
        energy="conv",
        image_shape=(1, 8, 8),
        energy_params={"channels": (16, 32, 64)},
        max_iter=max_iter,
        n_purify_steps=n_purify,
        n_replicates=n_rep,
        random_state=args.seed,
    )
    t0 = time.perf_counter()
    purifier.fit(X_train)
    t_fit = time.perf_counter() - t0

    t0 = time.perf_counter()
    purifier.purify(X_test, n_replicates=1)
    t_purify = (time.perf_counter() - t0) / len(X_test)

    defended = PurifiedClassifier(FrozenEstimator(purifier), FrozenEstimator(cnn), n_replicates=n_rep)
    defended.fit(X_train, y_train)
    t0 = time.perf_counter()
    table = evaluate_robustness(
        defended,
        X_att,
        y_att,
        epsilons=epsilons,
        n_steps=attack_steps,
        eot_replicates=n_eot,
        bounds=(0.0, 1.0),
        random_state=args.seed,
    )
    t_attack = time.perf_counter() - t0
    full_nat = {
        "undefended": float(np.mean(cnn.predict(X_test) == y_test)),
        "purified": float(np.mean(defended.predict(X_test) == y_test)),
    }
    t_adv = None
    if not args.no_adv_training:
        t0 = time.perf_counter()
        adv_net = adversarial_training(X_train, y_train, 0.2, 10 if quick else 40, args.seed)
        t_adv = time.perf_counter() - t0
        adv = evaluate_robustness(
            adv_net, X_att, y_att, epsilons=epsilons, n_steps=attack_steps, bounds=(0, 1), random_state=args.seed
        )
        table["adversarial training (eps 0.2)"] = adv["undefended"]
        with torch.no_grad():
            adv_pred = adv_net(torch.as_tensor(X_test)).argmax(1).numpy()
        full_nat["adversarial training"] = float(np.mean(adv_pred == y_test))

    print(f"## EBMPurifier on digits ({'quick' if quick else 'full'} run)\n")
    print(
        f"train {len(X_train)}, test {len(X_test)} (attacked: first {n_test}); L-inf PGD, {attack_steps} steps of "
        f"2.5*eps/{attack_steps}, random start, an input broken at any step stays broken. Purified: BPDA + EOT, "
        f"{n_eot} replicates per attack step, breaks confirmed with the defence's {n_rep} replicates; "
        f"{n_purify} purification steps.\n"
    )
    cols = list(table.columns)
    print("| epsilon | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for eps, row in table.iterrows():
        label = "0 (natural)" if eps == 0 else f"{eps:g}"
        print(f"| {label} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    nat = ", ".join(f"{k} {v:.3f}" for k, v in full_nat.items())
    print(f"\nnatural accuracy on all {len(X_test)} test images: {nat}\n")
    print("| timing | value |")
    print("|---|---|")
    print(f"| CNN training | {t_cnn:.1f} s |")
    print(f"| purifier training ({max_iter} updates) | {t_fit:.1f} s |")
    print(f"| purification ({n_purify} steps), one replicate | {t_purify * 1e3:.2f} ms / image |")
    print(f"| defended prediction ({n_rep} replicates) | {t_purify * n_rep * 1e3:.2f} ms / image |")
    print(f"| attack evaluation (undefended + purified) | {t_attack:.1f} s |")
    if t_adv is not None:
        print(f"| adversarial training baseline | {t_adv:.1f} s |")


if __name__ == "__main__":
    main()
