"""CausalCircuit: how the ILCM's result depends on the model seed and the schedule length.

Fits one ILCM per model seed (no candidates) on the features cached by
``benchmarks/causalcircuit.py`` and prints, per schedule and seed, DCI disentanglement,
intervention accuracy and the test ELBO — the spread that the benchmark's candidate
selection has to overcome, and how well the (label-free) ELBO ranks the seeds.

    python benchmarks/causalcircuit.py          # first: renders, fits the VAE, caches codes
    python benchmarks/causalcircuit_seeds.py [--scales 1 2 4] [--seeds 0 1 2 3] [--beta 1]
        [--root runs/benchmarks/causalcircuit]

``--scales`` stretches the ``fast`` recipe (3.5 epochs) by these factors; ``--beta`` sets the
KL weight that its ramp ends at (``Recipe.beta``).
"""

import argparse
import time
from pathlib import Path

import torch

from pyrocrl.data import load
from pyrocrl.inference.fit import fit_ilcm
from pyrocrl.inference.recipes import get_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--beta", type=float, default=1.0, help="KL weight after the ramp")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/causalcircuit"))
    args = parser.parse_args()
    codes = {}
    for split in ("train", "test", "dci"):
        path = args.root / "codes" / f"{split}.nc"
        if not path.exists():
            parser.error(f"{path} is missing: run benchmarks/causalcircuit.py first")
        codes[split] = load(path)
    print("| recipe | model seed | DCI disentanglement | intervention accuracy | ELBO | min |")
    print("|---|---|---|---|---|---|")
    for scale in args.scales:
        recipe = get_recipe("fast").scaled(scale).replace(beta=args.beta)
        for seed in args.seeds:
            start = time.perf_counter()
            *_, report = fit_ilcm(
                codes["train"], 4, test=codes["test"], dci_train=codes["dci"], recipe=recipe,
                seed=seed, backend="jax", progress=False,
            )  # fmt: skip
            m = report.metrics
            print(
                f"| fast × {scale:g}, β {args.beta:g} | {seed} | {m['dci_disentanglement']:.3f} | "
                f"{m['intervention_accuracy']:.3f} | {m['elbo']:.2f} | "
                f"{(time.perf_counter() - start) / 60:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
