"""Does the label-free agreement between model seeds tell good fits from bad ones?

Fits several model seeds in each setting — the scaling toy with the ``fast`` recipe (good
fits), the same recipe cut to a tenth (under-trained), the light tunnel's sensor readings
(a system the ILCM does not yet identify) and the same without its two Malus-law sensors —
and prints per setting the mean DCI disentanglement and intervention accuracy (labels) beside
the agreement of the learned variables and of the inferred targets
(:func:`pyrocrl.inference.trust.trust_report`, no labels), then the correlation of agreement
and DCI over all settings.

    python benchmarks/trust.py [--seeds 0 1 2] [--backend jax] [--settings toy short ...]
"""

import argparse

import numpy as np
import torch
from _runner import header

from pyrocrl.data.catalog import simulate_dataset
from pyrocrl.inference.fit import fit_ilcm
from pyrocrl.inference.fit_setup import toy_fit_data, tuned_recipe
from pyrocrl.inference.trust import trust_report


def _toy():
    data = toy_fit_data(4, seed=302, pairs=20_000, test_pairs=5_000)
    return data.train, data.test, 4


def _tunnel(drop=()):
    train = simulate_dataset("chamber", 50_000, seed=0, graph_seed=0)
    test = simulate_dataset("chamber", 5_000, seed=10_000, graph_seed=0)
    keep = [f for f in train["feature"].values if f not in drop]
    return train.sel(feature=keep), test.sel(feature=keep), 5


SETTINGS = {
    "toy": (_toy, 1.0),
    "short": (_toy, 0.1),
    "tunnel": (_tunnel, 1.0),
    "tunnel-7": (lambda: _tunnel(("ir_3", "vis_3")), 1.0),
}
"""``name → (data, recipe scale)``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backend", choices=["torch", "jax"], default="jax")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    print(
        header("setting | DCI D (mean) | accuracy (mean) | variable agreement | target agreement")
    )
    dcis, agreements = [], []
    for name in args.settings:
        make, scale = SETTINGS[name]
        train, test, n = make()
        recipe = tuned_recipe("fast", scale=scale)
        fits, metrics = [], []
        for seed in args.seeds:
            model, guide, report = fit_ilcm(
                train, n, test=test, recipe=recipe, seed=seed, backend=args.backend, progress=False
            )
            fits.append((model, guide))
            metrics.append(report.metrics)
        x = torch.as_tensor(test["x"].values)
        trust = trust_report(fits, x[:, 0], x[:, 1])
        dci = np.mean([m["dci_disentanglement"] for m in metrics])
        accuracy = np.mean([m["intervention_accuracy"] for m in metrics])
        dcis.append(dci)
        agreements.append(trust.variables.mean)
        print(
            f"| {name} | {dci:.3f} | {accuracy:.3f} | {trust.variables.mean:.3f} | "
            f"{trust.targets:.3f} |",
            flush=True,
        )
    if len(dcis) > 2:
        correlation = np.corrcoef(dcis, agreements)[0, 1]
        print(f"\ncorrelation of agreement and DCI over settings: {correlation:.2f}")


if __name__ == "__main__":
    main()
