"""CV-KDE, CV-GMM and a zuko NSF (held-out early stop) on the toys and tables."""
import json
import sys

import numpy as np

from common import TABLES, TOYS, Timer, cv_gmm, cv_kde, dataset, flow_fit

names = sys.argv[1:] or list(TOYS + TABLES)
out = {}
for name in names:
    X, Xt, true = dataset(name)
    row = {"true": true, "n": X.shape}
    with Timer() as t:
        k = cv_kde(X)
    row["kde"] = (float(k.score_samples(Xt).mean()), t.s, float(k.bandwidth))
    with Timer() as t:
        g = cv_gmm(X)
    row["gmm"] = (float(g.score_samples(Xt).mean()), t.s, f"{g.n_components} {g.covariance_type}")
    with Timer() as t:
        f = flow_fit(X, time_limit=240)
    row["nsf"] = (float(f(Xt).mean()), t.s, f.epochs)
    out[name] = row
    print(name, row, flush=True)
json.dump(out, open(f"results_baselines_{'_'.join(names) if sys.argv[1:] else 'all'}.json", "w"), indent=1)
