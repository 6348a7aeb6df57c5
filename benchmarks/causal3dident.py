"""Causal3DIdent-style scenes from pixels: render, reduce with an image VAE, fit an ILCM and
the β-VAE and dVAE baselines on the same codes, score, draw.

Targets (issue: the seed's remaining experiments): DCI disentanglement ≥ 0.9 and
intervention accuracy ≥ 0.9 over the variables that vary (all nine, or a documented subset
of at least six), trained on this CPU in ≤ 60 minutes; the SHD of the learned graph
(ILCM-H and ENCO, learned variables matched to the true ones by the intervention labels);
rendering ≥ 200 pairs/s at 64 × 64 with two processes.

    python benchmarks/causal3dident.py [--seed 302] [--pairs 100000] [--shape teapot]
        [--variables all | pos_x pos_y …] [--dim 16] [--vae-epochs 4] [--epochs 42]
        [--hidden 128 128] [--candidates 1] [--baselines dvae betavae]
        [--root runs/benchmarks/causal3dident]

By default the seven variables other than the two rotation angles vary (:data:`SUBSET`:
at 64 × 64 the image VAE's features keep the rotations of the small object poorly, which
the ceiling below shows with ``--variables all``). The ILCM trains the ``fast`` recipe
stretched to ``--epochs`` with ``--hidden`` networks (with ``--candidates K``, K seeds to
``--select-epoch`` and the best training ELBO finished: no labels used). A
supervised read-out of the codes (an MLP to the true ``z``) gives the ceiling the codes
allow. Every stage is cached in ``--root``; ``--quick`` is a smoke test at a tiny size. The
figure goes to ``ROOT/figure.png``; ``--figure PATH`` copies it there.
"""

import argparse
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch
from _pixels import cached_codes, cached_splits, cached_vae, draw, feature_ceiling, stage
from _runner import header, met

from pyrocrl.data.causal3dident import (
    SHAPES,
    VARIABLES,
    causal3dident,
    simulate_causal3dident,
    simulate_causal3dident_splits,
)
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.graph import learn_graph
from pyrocrl.inference.queries import predict_targets
from pyrocrl.inference.recipes import get_recipe
from pyrocrl.metrics import graph_scores, match_interventions

SUBSET = ("pos_x", "pos_y", "pos_z", "spot", "hue_object", "hue_spot", "hue_background")
"""The variables that vary by default: all but the rotations, both mechanisms kept."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=302, help="data seed")
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=100_000, help="training pairs")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--shape", default="teapot", choices=SHAPES)
    parser.add_argument(
        "--variables", nargs="+", default=list(SUBSET), choices=[*VARIABLES, "all"]
    )
    parser.add_argument("--dim", type=int, default=16, help="image VAE code size")
    parser.add_argument("--vae-epochs", type=float, default=4.0)
    parser.add_argument("--vae-images", type=int, default=50_000)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--epochs", type=float, default=42.0)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--select-epoch", type=float, default=4.0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--baselines", nargs="*", default=["dvae", "betavae"])
    parser.add_argument("--backend", default="jax", choices=["torch", "jax"])
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/causal3dident"))
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke test at a tiny size")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.resolution, args.vae_epochs, args.vae_images = 600, 16, 1.0, 1000
        args.epochs, args.candidates, args.select_epoch = 0.5, 1, 0.25
    variables = [v for v in VARIABLES if v in args.variables or "all" in args.variables]
    n = len(variables)
    sizes = {"train": args.pairs, "test": min(10_000, args.pairs), "dci": min(10_000, args.pairs)}
    root = args.root
    lcm = causal3dident(variables)

    options = dict(resolution=args.resolution, shape=args.shape, variables=variables)
    splits, throughput = cached_splits(
        root, sizes, lambda: simulate_causal3dident_splits(args.seed, sizes, **options)
    )
    speed = rendering_speed(args.resolution, args.shape)
    vae, vae_report = cached_vae(
        root,
        splits["train"],
        dim=args.dim,
        epochs=args.vae_epochs,
        max_images=args.vae_images,
        seed=args.model_seed,
    )
    codes = cached_codes(root, vae, splits)
    ceiling = feature_ceiling(root, codes, seed=args.model_seed)

    recipe = get_recipe(args.recipe)
    recipe = recipe.scaled(args.epochs / recipe.epochs)
    if args.candidates > 1:
        recipe = recipe.replace(candidates=args.candidates, select_epoch=args.select_epoch)
    reports = {}
    for method in ["ilcm", *args.baselines]:
        stage(method)
        _, _, reports[method] = fit_ilcm(  # a finished fit resumes: same model, same report
            codes["train"],
            n,
            test=codes["test"],
            dci_train=codes["dci"],
            recipe=recipe,
            seed=args.model_seed,
            output=root / method,
            hidden=tuple(args.hidden),
            backend=args.backend,
            model=None if method == "ilcm" else method,
        )
        print(reports[method].format())
    model, guide = load_ilcm(root / "ilcm" / "checkpoint.pt")

    # graphs, learned variables matched to the true ones by the intervention labels
    test = codes["test"]
    x = test["x"].values[:5000]
    targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
    match = match_interventions(targets, test["target"].values[:5000], n)[1:] - 1
    graphs = {}
    for method in ("ilcm-h", "enco"):
        found = learn_graph(model, guide, x[:, 0], x[:, 1], method=method)
        graphs[method] = (found, graph_scores(found.adjacency, lcm.scm.adjacency, match))
    figure = draw(
        model, guide, vae, splits["test"], test, graphs["enco"][0], match, variables, columns=7
    )
    figure.savefig(root / "figure.png", dpi=100, bbox_inches="tight")
    if args.figure is not None:
        shutil.copy(root / "figure.png", args.figure)

    ilcm = reports["ilcm"].metrics
    training = vae_report["seconds"] + reports["ilcm"].train_time
    edges = int(lcm.scm.adjacency.sum())
    print(f"\n{n} variables ({', '.join(variables)}), shape {args.shape}, data seed {args.seed}")
    print(header("quantity | value | target"))
    print(f"| rendering, 2 processes (pairs/s) | {speed:.0f} | ≥ 200: {met(speed >= 200)} |")
    print(f"| rendering, this run's splits (pairs/s) | {throughput:.0f} | |")
    print(f"| image VAE: training time (min) | {vae_report['seconds'] / 60:.1f} | |")
    print(f"| image VAE: reconstruction MSE | {vae_report['mse']:.5f} | |")
    print(f"| ILCM: training time (min) | {reports['ilcm'].train_time / 60:.1f} | |")
    within = met(training <= 3600)
    print(f"| training time, VAE + ILCM (min) | {training / 60:.1f} | ≤ 60: {within} |")
    dci = ilcm["dci_disentanglement"]
    print(f"| ILCM: DCI disentanglement | {dci:.3f} | ≥ 0.9: {met(dci >= 0.9)} |")
    accuracy = ilcm["intervention_accuracy"]
    print(f"| ILCM: intervention accuracy | {accuracy:.3f} | ≥ 0.9: {met(accuracy >= 0.9)} |")
    print(f"| ILCM: DCI completeness | {ilcm['dci_completeness']:.3f} | |")
    print(f"| ceiling: DCI of a supervised read-out of the codes | {ceiling['dci']:.3f} | |")
    for method, (_, scores) in graphs.items():
        print(f"| SHD, {method} (true graph: {edges} edges) | {scores.shd} | |")
    for method in args.baselines:
        m = reports[method].metrics
        print(f"| {method}: DCI disentanglement | {m['dci_disentanglement']:.3f} | |")
        accuracy = m.get("intervention_accuracy")  # β-VAE: no interventions to infer
        shown = "—" if accuracy is None else f"{accuracy:.3f}"
        print(f"| {method}: intervention accuracy | {shown} | |")
    r2 = ", ".join(f"{v} {r:.3f}" for v, r in zip(variables, ceiling["r2"], strict=True))
    print(f"\nceiling R² per variable: {r2}")
    print(f"learned z1..z{n} matched to: {', '.join(variables[j] for j in match)}")


def rendering_speed(resolution: int, shape: str, pairs: int = 20_000) -> float:
    """Pairs per second of :func:`simulate_causal3dident` with two processes."""
    start = time.perf_counter()
    simulate_causal3dident(pairs, 0, resolution=resolution, shape=shape, workers=2)
    return pairs / (time.perf_counter() - start)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
