"""Held-out LL of candidate *bases* on the tables (no tilt): Gaussian, few-component GMMs, marginal Gaussianisation."""
import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold, cross_val_score
from sklearn.preprocessing import PowerTransformer
from scipy.stats import multivariate_normal

from common import TABLES, Timer, dataset

for name in TABLES:
    Z, Zt, true = dataset(name)
    out = {}
    lw = LedoitWolf().fit(Z)
    out["gauss_lw"] = multivariate_normal(Z.mean(0), lw.covariance_).logpdf(Zt).mean()
    for k in (1, 2, 4, 8):
        for reg in (1e-3, 1e-2):
            g = GaussianMixture(k, covariance_type="full", reg_covar=reg, random_state=0, n_init=1).fit(Z)
            out[f"gmm{k}_r{reg}"] = g.score(Zt)
    with Timer() as t:
        folds = KFold(3, shuffle=True, random_state=0)
        cands = [(k, r) for k in (1, 2, 4, 8) for r in (1e-3, 1e-2) if k <= len(Z) // 20]
        best = max(cands, key=lambda c: cross_val_score(GaussianMixture(c[0], reg_covar=c[1], random_state=0), Z, cv=folds).mean())
    out["cv_few"] = (best, GaussianMixture(best[0], reg_covar=best[1], random_state=0).fit(Z).score(Zt), round(t.s, 1))
    pt = PowerTransformer(standardize=True).fit(Z)
    U, Ut = pt.transform(Z), pt.transform(Zt)
    # log-Jacobian of the Yeo-Johnson transform + standardisation, per sample
    def yj_logjac(X):
        lam = pt.lambdas_
        pos = X >= 0
        dj = np.where(pos, (lam - 1) * np.log1p(np.abs(X)), (1 - lam) * np.log1p(np.abs(X)))
        return dj.sum(1) - np.log(pt._scaler.scale_).sum()
    lwu = LedoitWolf().fit(U)
    out["yj_gauss"] = (multivariate_normal(U.mean(0), lwu.covariance_).logpdf(Ut) + yj_logjac(Zt)).mean()
    print(name, "true", true, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}, flush=True)
