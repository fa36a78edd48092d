"""Helpers shared by the benchmark scripts (imported as ``_common``: the scripts run from this folder)."""

import ast


def parse_set(items):
    """``["name=value", ...]`` of a ``--set`` option as a dict; values are Python literals where they parse."""
    params = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def rbm_samples(rbm, n_samples, seed, n_gibbs):
    """Visible probabilities after ``n_gibbs`` Gibbs steps of a fitted BernoulliRBM from random binary images."""
    import numpy as np
    from sklearn.utils import check_random_state

    rng = check_random_state(seed)
    v = (rng.uniform(size=(n_samples, rbm.components_.shape[1])) < 0.5).astype(np.float64)
    rbm.random_state = rng
    for _ in range(n_gibbs):
        v = rbm.gibbs(v)
    h = rbm._sample_hiddens(v, rng)
    return 1.0 / (1.0 + np.exp(-(h @ rbm.components_ + rbm.intercept_visible_)))


def ebm_params(args, quick_max_iter):
    """The EBMGenerator parameters of ``--set``, ``--max-iter`` and ``--quick``; applies ``--threads``."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    params = parse_set(args.set)
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    elif args.quick:
        params.setdefault("max_iter", quick_max_iter)
    return params
