"""CausalCircuit from pixels: render, reduce with an image VAE, fit an ILCM, score, draw.

Targets (issue: CausalCircuit): on 64 × 64 renders, DCI disentanglement ≥ 0.9 and
intervention accuracy ≥ 0.9, trained on this CPU in ≤ 60 minutes; the SHD of the learned
graph (ILCM-H and ENCO, learned variables matched to the true ones by the intervention
labels); and rendering throughput ≥ 200 pairs/s.

    python benchmarks/causalcircuit.py [--seed 302] [--pairs 100000] [--vae-epochs 4]
        [--recipe fast] [--epochs 14] [--candidates 32] [--select-epoch 12] [--backend jax]
        [--root runs/benchmarks/causalcircuit]

The ILCM trains ``--candidates`` seeds of the ``fast`` recipe stretched to ``--epochs`` up to
``--select-epoch`` and finishes the one with the best training ELBO (no labels used). A
supervised read-out of the features (an MLP from the 8 features to the true ``z``) gives the
ceiling that the features allow: its R² and the DCI of its predictions.

Every stage is cached in ``--root`` (images, the VAE, the codes, the ILCM checkpoint), so a
second run only scores and draws. ``--quick`` is a smoke test at a tiny size. The figure
goes to ``ROOT/figure.png`` and the learned variables plotted against the true ones to
``ROOT/latents.png``; ``--figure PATH`` copies them to ``PATH`` and to its name + ``_latents``
(e.g. for the README).
"""

import argparse
import shutil
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import torch
from _pixels import cached_codes, cached_splits, cached_vae, draw, feature_ceiling, stage
from _runner import header

from pyrocrl.data.causalcircuit import VARIABLES, causal_circuit, simulate_causalcircuit_splits
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.graph import learn_graph
from pyrocrl.inference.queries import encode, predict_targets
from pyrocrl.inference.recipes import get_recipe
from pyrocrl.metrics import graph_scores, match_interventions, monotone_r2
from pyrocrl.plots import plot_latents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=302, help="data seed")
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=100_000, help="training pairs")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--dim", type=int, default=8, help="image VAE code size")
    parser.add_argument("--vae-epochs", type=float, default=4.0)
    parser.add_argument("--vae-images", type=int, default=50_000)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument(
        "--epochs", type=float, default=14.0, help="the recipe stretched to this many epochs"
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=32,
        help="train this many seeds to --select-epoch, finish the one with the best ELBO",
    )
    parser.add_argument("--select-epoch", type=float, default=12.0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--backend", default="jax", choices=["torch", "jax"])
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/causalcircuit"))
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke test at a tiny size")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.resolution, args.vae_epochs, args.vae_images = 600, 16, 1.0, 1000
        args.epochs, args.candidates, args.select_epoch = 0.5, 2, 0.25
    sizes = {"train": args.pairs, "test": min(10_000, args.pairs), "dci": min(10_000, args.pairs)}
    root = args.root
    times: dict[str, float] = {}

    # 1. images; 2. the image VAE (the pairing is not used); 3. codes; 4. the ceiling
    splits, throughput = cached_splits(
        root,
        sizes,
        lambda: simulate_causalcircuit_splits(args.seed, sizes, resolution=args.resolution),
    )
    vae, vae_report = cached_vae(
        root,
        splits["train"],
        dim=args.dim,
        epochs=args.vae_epochs,
        max_images=args.vae_images,
        seed=args.model_seed,
    )
    times["vae"] = vae_report["seconds"]
    codes = cached_codes(root, vae, splits)
    ceiling = feature_ceiling(root, codes, seed=args.model_seed)

    # 5. ILCM on the codes
    stage("ILCM")
    recipe = get_recipe(args.recipe)
    recipe = recipe.scaled(args.epochs / recipe.epochs)
    if args.candidates > 1:
        recipe = recipe.replace(candidates=args.candidates, select_epoch=args.select_epoch)
    _, _, report = fit_ilcm(  # a finished fit resumes: same model, its own time and selection
        codes["train"],
        4,
        test=codes["test"],
        dci_train=codes["dci"],
        recipe=recipe,
        seed=args.model_seed,
        output=root / "ilcm",
        hidden=tuple(args.hidden),
        backend=args.backend,
    )
    times["ilcm"] = report.train_time
    print(report.format())
    model, guide = load_ilcm(root / "ilcm" / "checkpoint.pt")

    # 6. graphs, matched by intervention labels
    test = codes["test"]
    x = test["x"].values[:5000]
    true_targets = test["target"].values[:5000]
    targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
    match = match_interventions(targets, true_targets, 4)[1:] - 1
    adjacency = causal_circuit().scm.adjacency
    graphs = {}
    for method in ("ilcm-h", "enco"):
        found = learn_graph(model, guide, x[:, 0], x[:, 1], method=method)
        graphs[method] = (found, graph_scores(found.adjacency, adjacency, match))

    # 7. the figures: interventions decoded to pixels; learned against true variables
    figure = draw(model, guide, vae, splits["test"], test, graphs["enco"][0], match, VARIABLES)
    figure.savefig(root / "figure.png", dpi=120, bbox_inches="tight")
    if args.figure is not None:
        shutil.copy(root / "figure.png", args.figure)
    learned = encode(guide, x[:, 0])["z"].numpy()
    arm = int(np.flatnonzero(match == 0)[0])  # the learned variable matched to the arm
    unfolded = monotone_r2(learned[:, arm], test["z"].values[:5000, 0, 0])
    labels = [f"z{k + 1} ({VARIABLES[j]})" for k, j in enumerate(match)]
    latents = plot_latents(
        learned, test["z"].values[:5000, 0], learned_names=labels, true_names=VARIABLES
    )
    latents.savefig(root / "latents.png", dpi=80, bbox_inches="tight")
    if args.figure is not None:
        shutil.copy(root / "latents.png", args.figure.with_name(f"{args.figure.stem}_latents.png"))

    m = report.metrics
    training = times["vae"] + times["ilcm"]
    print()
    print(header("quantity | value | target"))
    print(f"| rendering throughput (pairs/s, 2 processes) | {throughput:.0f} | ≥ 200 |")
    print(f"| image VAE: training time (min) | {times['vae'] / 60:.1f} | |")
    print(f"| image VAE: reconstruction MSE | {vae_report['mse']:.5f} | |")
    print(f"| ILCM: training time (min) | {times['ilcm'] / 60:.1f} | |")
    print(f"| training time, VAE + ILCM (min) | {training / 60:.1f} | ≤ 60 |")
    print(f"| DCI disentanglement | {m['dci_disentanglement']:.3f} | ≥ 0.9 |")
    print(f"| ceiling: DCI of a supervised read-out of the features | {ceiling['dci']:.3f} | |")
    print(f"| DCI completeness | {m['dci_completeness']:.3f} | |")
    print(f"| intervention accuracy | {m['intervention_accuracy']:.3f} | ≥ 0.9 |")
    print(f"| arm: monotone R² of its learned variable (1: no fold) | {unfolded:.3f} | |")
    for method, (_, scores) in graphs.items():
        print(f"| SHD, {method} (true graph: 4 edges) | {scores.shd} | |")
    names = [VARIABLES[j] for j in match]
    print(f"\nlearned z1..z4 matched to: {', '.join(names)}")
    for method, (found, _) in graphs.items():
        causes, effects = np.nonzero(found.adjacency)
        edges = [f"{names[i]}→{names[j]}" for i, j in zip(causes, effects, strict=True)]
        print(f"{method} edges: {', '.join(edges) or 'none'}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
