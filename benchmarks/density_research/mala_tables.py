"""Today's EBMDensity (longrun MALA, AIS) with a weak base on the tables, for comparison."""
import json
import sys
import time

import numpy as np

from common import dataset
from skebm import EBMDensity

for name in sys.argv[1:]:
    Z, Zt, true = dataset(name)
    for params in ({"base": "gaussian"}, {"base": "gaussian", "max_iter": 500}):
        t = time.perf_counter()
        est = EBMDensity(random_state=0, **params).fit(Z)
        sec = time.perf_counter() - t
        rec = dict(data=name, params=params, test_ll=float(est.score(Zt)), log_z_se=float(est.log_partition_se_),
                   seconds=sec, true=true)
        print(json.dumps(rec), flush=True)
        with open("results_mala.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
