"""What the pixel benchmarks share: the cached two-stage pipeline (render → image VAE →
codes → ILCM), the supervised read-out ceiling, and the figure of interventions decoded to
pixels beside the learned graph.

Every stage is cached under a root folder (images, the VAE, the codes), so a second run
only scores and draws.
"""

__all__ = ["cached_codes", "cached_splits", "cached_vae", "draw", "feature_ceiling", "stage"]

import json
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from pyrocrl.data import load, save
from pyrocrl.inference.queries import encode
from pyrocrl.inference.reduce import (
    fit_image_vae,
    intervention_images,
    load_image_vae,
    reduce,
    save_image_vae,
)
from pyrocrl.plots import plot_graph, plot_image_grid


def stage(name: str) -> float:
    print(f"== {name}", flush=True)
    return time.perf_counter()


def cached_splits(
    root: Path, sizes: dict[str, int], render: Callable[[], dict[str, xr.Dataset]]
) -> tuple[dict[str, xr.Dataset], float]:
    """The image splits in ``root/data`` (rendered by ``render()`` the first time), and the
    rendering throughput in pairs per second."""
    start = stage("render")
    (root / "data").mkdir(parents=True, exist_ok=True)
    paths = {k: root / "data" / f"{k}.nc" for k in sizes}
    if all(p.exists() for p in paths.values()):
        splits = {k: load(p) for k, p in paths.items()}
        rendered = json.loads((root / "data" / "render.json").read_text())
    else:
        splits = render()
        rendered = {"seconds": time.perf_counter() - start, "pairs": sum(sizes.values())}
        for k, p in paths.items():
            save(splits[k], p)
        (root / "data" / "render.json").write_text(json.dumps(rendered))
    throughput = rendered["pairs"] / rendered["seconds"]
    print(f"{rendered['pairs']} pairs rendered at {throughput:.0f} pairs/s")
    return splits, throughput


def cached_vae(root: Path, train: xr.Dataset, **options):
    """The image VAE in ``root/vae.pt`` (:func:`fit_image_vae` of ``train`` with
    ``options`` the first time; the pairing is not used) and its report."""
    stage("image VAE")
    vae_path = root / "vae.pt"
    if vae_path.exists():
        vae = load_image_vae(vae_path)
        report = json.loads((root / "vae.json").read_text())
    else:
        vae, report = fit_image_vae(train, checkpoint=root / "vae.training", **options)
        save_image_vae(vae, vae_path)
        (root / "vae.training").unlink()
        (root / "vae.json").write_text(json.dumps(report))
    print(f"VAE: {report}")
    return vae, report


def cached_codes(root: Path, vae, splits: dict[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    """Every split encoded by ``vae`` (:func:`reduce`), cached in ``root/codes``."""
    stage("encode")
    (root / "codes").mkdir(exist_ok=True)
    paths = {k: root / "codes" / f"{k}.nc" for k in splits}
    if all(p.exists() for p in paths.values()):
        return {k: load(p) for k, p in paths.items()}
    codes = {k: reduce(vae, ds) for k, ds in splits.items()}
    for k, p in paths.items():
        save(codes[k], p)
    return codes


def feature_ceiling(root: Path, codes: dict[str, xr.Dataset], seed: int = 0) -> dict:
    """What the features allow, cached in ``root/ceiling.json``: an MLP fitted (with labels)
    from the features of 30,000 training first views to the standardized true ``z``; its R²
    per variable on the test pairs, and the DCI disentanglement of its predictions (scored
    like the ILCM's)."""
    stage("feature ceiling")
    path = root / "ceiling.json"
    if path.exists():
        ceiling = json.loads(path.read_text())
    else:
        ceiling = _feature_ceiling(codes, seed)
        path.write_text(json.dumps(ceiling))
    print(f"features → z (supervised MLP): R² {ceiling['r2']}, DCI {ceiling['dci']:.3f}")
    return ceiling


def _feature_ceiling(codes: dict[str, xr.Dataset], seed: int, pairs: int = 30_000) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    from pyrocrl.metrics import dci

    x, z = codes["train"]["x"].values[:pairs, 0], codes["train"]["z"].values[:pairs, 0]
    mean, std = z.mean(0), z.std(0)
    mlp = MLPRegressor(
        hidden_layer_sizes=(128, 128), max_iter=60, early_stopping=True, random_state=seed
    )
    with warnings.catch_warnings():  # 60 passes are enough for a ceiling
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x, (z - mean) / std)
    test_x, test_z = codes["test"]["x"].values[:5000, 0], codes["test"]["z"].values[:5000, 0]
    dci_x, dci_z = codes["dci"]["x"].values[:10_000, 0], codes["dci"]["z"].values[:10_000, 0]
    predicted = mlp.predict(test_x)
    target = (test_z - mean) / std
    r2 = 1.0 - ((predicted - target) ** 2).mean(0) / target.var(0)
    scores = dci(mlp.predict(dci_x), dci_z, predicted, test_z, seed=seed)
    return {"r2": [round(float(v), 4) for v in r2], "dci": scores.disentanglement}


def draw(
    model,
    guide,
    vae,
    images_ds: xr.Dataset,
    codes_ds: xr.Dataset,
    graph,
    match: np.ndarray,
    variables: Sequence[str],
    columns: int = 7,
):
    """For each learned variable, a scene under interventions on it (values from its 5 % to
    95 % quantiles on held-out data), and the learned graph; variables named by matching
    (``variables[match[k]]`` is the true variable of learned ``z_k``)."""
    from pyrocrl.data import images

    z = encode(guide, codes_ds["x"].values[:2000, 0])["z"].numpy()
    values = np.quantile(z, np.linspace(0.05, 0.95, columns), axis=0).T  # (n, columns)
    scene = images(images_ds)[0, 0]
    grid = intervention_images(model, guide, vae, scene, values)
    names = [f"z{k + 1} ({variables[j]})" for k, j in enumerate(match)]
    height = 1.2 * len(match)
    figure = plt.figure(figsize=(12, max(4.8, height)))
    left, right = figure.subfigures(1, 2, width_ratios=[3.2, 1])
    plot_image_grid(
        grid, row_labels=names, column_labels=["5 %", *[""] * (columns - 2), "95 %"], figure=left
    )
    left.suptitle("do(z_k = v), v from the 5 % to the 95 % quantile of z_k")
    plot_graph(graph.adjacency, names=[variables[j] for j in match], ax=right.add_subplot())
    right.suptitle("learned graph (ENCO)")
    return figure
