"""AUROC of the recipe's score_samples on held-out classes, next to CV-GMM, CV-KDE, IsolationForest."""
import json
import os
import sys
import types

sys.path.insert(0, "..")
import numpy as np
from sklearn.metrics import roc_auc_score

from common import Timer
from bench_density import anomaly_sets, fit_gmm, fit_iforest, fit_kde
from recipe import TiltedDensity

args = types.SimpleNamespace(seed=0, outlier_digits=[int(a) for a in sys.argv[1:]])
for name, X, Xt, y in anomaly_sets(args):
    rec = {"data": name}
    methods = {"recipe": lambda X, s, p: TiltedDensity().fit(X).score_samples, "gmm": fit_gmm,
               "kde": fit_kde, "iforest": fit_iforest}
    if os.environ.get("ONLY_STANDARD"):
        methods = {"recipe_standard": lambda X, s, p: TiltedDensity(transform="standard").fit(X).score_samples}
    for method, fit in methods.items():
        with Timer() as t:
            score = fit(X, 0, None)
        s = score(Xt)
        s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1)
        rec[method] = (round(roc_auc_score(y, -s), 4), round(t.cpu, 1))
    print(json.dumps(rec), flush=True)
    with open("results_anomaly.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
