"""Arrows only downward: no skebm module imports a layer above its own, local imports included.

The layers, bottom first: the one-place helpers (randomness, batching, image
shapes, the torch view of a classifier), networks, the sampler, the engine
and the metrics, the shared estimator base, the estimators, the attacks,
plotting and data sets, and the package surface. The monitor records arrays
and ``plotting`` draws them; the purifier reaches classifiers through
``_torch_classifier``, never through ``attacks``.
"""

import ast
import pathlib

import skebm

LAYERS = [
    {"_version", "_validation", "_random", "_torch_utils", "_images", "_threads", "_docs", "_torch_classifier", "_cost"},
    {"nn"},
    {"mcmc"},
    {"engine", "metrics", "presets"},
    {"_base"},
    {"generator", "purifier", "classifier", "density", "_density_methods"},
    {"attacks"},
    {"plotting", "datasets"},
    {"skebm", "_persistence", "utils", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

#: Upward imports allowed for a while, with the release that removes them.
DEPRECATED_ARROWS = {("skebm.engine._monitor", "skebm.plotting")}  # SampleMonitor.save_evolution, until 0.5


def _imports(path, module, package):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _layer(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "skebm"


def test_every_import_points_down():
    root = pathlib.Path(skebm.__file__).parent
    upward = []
    for path in sorted(root.rglob("*.py")):
        parts = ["skebm", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for target in _imports(path, module, package):
            if not target.startswith("skebm"):
                continue
            here, there = _layer(module), _layer(target)
            assert here in RANK and there in RANK, f"{module} or {target}: add its layer to LAYERS"
            if RANK[there] > RANK[here] and (module, target) not in DEPRECATED_ARROWS:
                upward.append(f"{module} imports {target}")
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)
