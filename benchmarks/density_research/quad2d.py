"""Exact maximum likelihood in 2-D: log Z by quadrature on a (jittered) grid, no MCMC.

Model (standardised z): E(z) = g(z) - log q(z) [+ |z|^2/(2 tau^2)], p = exp(-E)/Z,
g an MLP with random Fourier features, last layer zero (training starts at q).
Loss = mean E(z_train) + log Z, log Z = logsumexp_nodes(-E + log cell area): the exact
NLL and its exact gradient (up to quadrature error).

The grid is a tensor product of per-axis cells: ``n_fine`` equal cells over the data
range (+ ``pad``), and ``n_tail`` cells growing geometrically out to ``tail`` standard
units on each side, so the whole region where the base has mass is integrated. In
training every node is jittered uniformly inside its cell (stratified sampling: an
unbiased estimate of Z, so the network cannot hide spikes between nodes); evaluation
uses cell midpoints, and the final log Z is re-checked on a 2x finer midpoint grid.

Usage: python quad2d.py [--datasets ...] [--configs name ...] [--out results.jsonl]
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import nn

from common import TOYS, toy
from skebm.nn import MLPEnergy

torch.set_num_threads(1)


def axis_cells(lo, hi, n_fine, n_tail, tail, growth=1.35):
    """Cell edges of one axis: fine cells on [lo, hi], geometric tails out to +/- tail."""
    fine = np.linspace(lo, hi, n_fine + 1)
    h = fine[1] - fine[0]
    if n_tail == 0:
        return fine

    def side(start, end):
        width = abs(end - start)
        if width <= 0:
            return np.array([])
        w = h * growth ** np.arange(1, n_tail + 1)
        w *= width / w.sum() if w.sum() > width else 1.0
        return np.cumsum(w)

    left = lo - side(lo, -tail)[::-1]
    right = hi + side(hi, tail)
    return np.concatenate([left, fine, right])


class Grid:
    def __init__(self, lo, hi, n_fine, n_tail, tail):
        edges = [axis_cells(lo[j], hi[j], n_fine, n_tail, tail) for j in range(2)]
        self.edges = [torch.as_tensor(e, dtype=torch.float32) for e in edges]
        a, b = [e[:-1] for e in self.edges], [e[1:] - e[:-1] for e in self.edges]
        A0, A1 = torch.meshgrid(a[0], a[1], indexing="ij")
        W0, W1 = torch.meshgrid(b[0], b[1], indexing="ij")
        self.corner = torch.stack([A0.reshape(-1), A1.reshape(-1)], 1)
        self.width = torch.stack([W0.reshape(-1), W1.reshape(-1)], 1)
        self.log_area = torch.log(self.width).sum(1)
        self.n = len(self.corner)

    def points(self, jitter):
        u = torch.rand_like(self.corner) if jitter else torch.full_like(self.corner, 0.5)
        return self.corner + u * self.width


def fine_log_z(energy, lo, hi, tail, n=1024, batch=65536):
    """Midpoint rule on a uniform n x n grid over [-tail, tail]^2 U box: the honest check."""
    lo2, hi2 = np.minimum(lo, -tail), np.maximum(hi, tail)
    axes = [torch.linspace(float(lo2[j]), float(hi2[j]), n + 1) for j in range(2)]
    mids = [(a[1:] + a[:-1]) / 2 for a in axes]
    M0, M1 = torch.meshgrid(mids[0], mids[1], indexing="ij")
    pts = torch.stack([M0.reshape(-1), M1.reshape(-1)], 1)
    log_area = float(sum(math.log(float(a[1] - a[0])) for a in axes))
    with torch.no_grad():
        le = torch.cat([-energy(pts[i : i + batch]).double() for i in range(0, len(pts), batch)])
    return float(torch.logsumexp(le, 0)) + log_area


class GaussBase(nn.Module):
    """Gaussian mixture log-density (fixed), float32."""

    def __init__(self, weights, means, covs):
        super().__init__()
        covs = np.asarray(covs, dtype=np.float64)
        chol = np.linalg.cholesky(covs)
        self.register_buffer("logw", torch.as_tensor(np.log(weights), dtype=torch.float32))
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float32))
        self.register_buffer("inv_chol", torch.as_tensor(np.linalg.inv(chol), dtype=torch.float32))
        self.register_buffer(
            "logdet", torch.as_tensor(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1), dtype=torch.float32)
        )

    def forward(self, x):
        d = x.shape[1]
        y = torch.einsum("kij,nkj->nki", self.inv_chol, x[:, None, :] - self.means[None])
        lp = -0.5 * (y**2).sum(2) - self.logdet - 0.5 * d * math.log(2 * math.pi) + self.logw
        return torch.logsumexp(lp, 1)


def make_base(Z, kind, seed=0):
    if kind == "none":
        return None
    if kind == "gauss":
        k = 1
    elif kind.startswith("gmm"):
        k = int(kind[3:])
    else:
        raise ValueError(kind)
    g = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(Z)
    return GaussBase(g.weights_, g.means_, g.covariances_)


class Model(nn.Module):
    def __init__(self, net, base, tau):
        super().__init__()
        self.net, self.base, self.tau = net, base, tau

    def forward(self, z):
        e = self.net(z)
        if self.base is not None:
            e = e - self.base(z)
        if self.tau:
            e = e + z.pow(2).sum(1) / (2 * self.tau**2)
        return e


DEFAULT = dict(
    base="gauss",
    tau=None,
    hidden=(128, 128),
    ff=128,
    fscale=4.0,
    act="silu",
    lr=5e-3,
    wd=0.0,
    steps=1500,
    batch=None,  # None: full batch
    n_fine=128,
    n_tail=12,
    tail=6.0,
    pad=0.25,
    jitter=True,
    data_noise=0.0,
    val_frac=0.15,
    eval_every=10,
    patience=20,  # evaluations without improvement
    decay="cosine",
    warm=0,
    time_limit=120.0,
    seed=0,
    ema=0.0,  # Polyak/EMA decay of the weights used for evaluation (0: off)
)


def fit(X, cfg, verbose=False):
    cfg = {**DEFAULT, **cfg}
    t0 = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    rng = np.random.RandomState(cfg["seed"])
    mu, sd = X.mean(0), X.std(0)
    Z = (X - mu) / sd
    perm = np.random.RandomState(cfg.get("split_seed", cfg["seed"])).permutation(len(Z))
    n_val = int(cfg["val_frac"] * len(Z))
    k = cfg.get("fold", 0)  # which block of the permutation is held out
    val_idx = perm[k * n_val : (k + 1) * n_val]
    mask = np.ones(len(Z), bool)
    mask[val_idx] = False
    Zv, Zt = Z[val_idx], Z[mask]
    tb = time.perf_counter()
    base = make_base(Zt, cfg["base"], cfg["seed"])
    t_base = time.perf_counter() - tb
    net = MLPEnergy(2, hidden_units=tuple(cfg["hidden"]), activation=cfg["act"], fourier_features=cfg["ff"],
                    fourier_scale=cfg["fscale"])
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    model = Model(net, base, cfg["tau"])
    lo, hi = Z.min(0) - cfg["pad"], Z.max(0) + cfg["pad"]
    grid = Grid(lo, hi, cfg["n_fine"], cfg["n_tail"], cfg["tail"])
    zt = torch.as_tensor(Zt, dtype=torch.float32)
    zv = torch.as_tensor(Zv, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), cfg["lr"], weight_decay=cfg["wd"])
    steps = cfg["steps"]
    if cfg["decay"] == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    mid = grid.points(jitter=False)

    def log_z(pts):
        return torch.logsumexp(-model(pts) + grid.log_area, 0)

    best, best_state, bad, hist = -np.inf, None, 0, []
    step = 0
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()} if cfg["ema"] else None
    for step in range(1, steps + 1):
        if cfg["batch"]:
            xb = zt[torch.randint(len(zt), (cfg["batch"],))]
        else:
            xb = zt
        if cfg["data_noise"]:
            xb = xb + cfg["data_noise"] * torch.randn_like(xb)
        pts = grid.points(jitter=cfg["jitter"])
        loss = model(xb).mean() + log_z(pts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in net.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].mul_(cfg["ema"]).add_(v, alpha=1 - cfg["ema"])
        if step % cfg["eval_every"] == 0 or step == steps:
            if ema is not None:
                live = {k: v.clone() for k, v in net.state_dict().items()}
                net.load_state_dict(ema)
            with torch.no_grad():
                lz = float(log_z(mid))
                val = float(-model(zv).mean()) - lz
                tr = float(-loss)
            hist.append((step, tr, val))
            if verbose:
                print(step, round(tr, 4), round(val, 4), round(time.perf_counter() - t0, 1), flush=True)
            if val > best:
                best, bad = val, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
            if ema is not None:
                net.load_state_dict(live)
            if bad >= cfg["patience"] or time.perf_counter() - t0 > cfg["time_limit"]:
                break
    net.load_state_dict(best_state)
    t_train = time.perf_counter() - t0 - t_base
    tz = time.perf_counter()
    with torch.no_grad():
        lz_mid = float(log_z(mid))
    lz_fine = fine_log_z(model, lo, hi, cfg["tail"], n=1024)
    t_logz = time.perf_counter() - tz
    offset = float(np.sum(np.log(sd)))

    def log_prob(Xn):
        with torch.no_grad():
            zn = torch.as_tensor((Xn - mu) / sd, dtype=torch.float32)
            return (-model(zn).double().numpy()) - lz_fine - offset

    log_prob.model, log_prob.mu, log_prob.sd, log_prob.lo, log_prob.hi = model, mu, sd, lo, hi
    info = dict(steps=step, best_val=best, lz_mid=lz_mid, lz_fine=lz_fine, t_base=t_base, t_train=t_train,
                t_logz=t_logz, t_total=time.perf_counter() - t0, n_nodes=grid.n)
    return log_prob, info, hist


CONFIGS = {
    "default": {},
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=list(TOYS))
    p.add_argument("--configs", nargs="+", default=None, help="JSON dicts or names in CONFIGS")
    p.add_argument("--out", default="results_quad2d.jsonl")
    p.add_argument("--tag", default="")
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    configs = args.configs or ["default"]
    for c in configs:
        cfg = CONFIGS[c] if c in CONFIGS else json.loads(c)
        for name in args.datasets:
            X, Xt, true = toy(name, n_train=args.n_train)
            lp, info, hist = fit(X, cfg, verbose=args.verbose)
            ll = float(np.mean(lp(Xt)))
            rec = dict(tag=args.tag, data=name, cfg=cfg, test_ll=ll, true=true, **info)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
