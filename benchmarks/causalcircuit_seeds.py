"""CausalCircuit: how the ILCM's result depends on the model seed and the schedule length.

Fits one ILCM per model seed (no candidates) on the features cached by
``benchmarks/causalcircuit.py`` and prints, per schedule and seed, DCI disentanglement,
intervention accuracy and the test ELBO — the spread that the benchmark's candidate
selection has to overcome, and how well the (label-free) ELBO ranks the seeds. The column
"arm unfolded" is the monotone R² of the true arm position's best learned variable
(:func:`pyrocrl.metrics.monotone_r2`, labels used for the diagnosis only): clearly below 1,
the learned arm folds back on itself at a button — the failure that separates the bad runs
from the good ones.

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
from _runner import header

from pyrocrl.data import load
from pyrocrl.inference.fit import fit_ilcm
from pyrocrl.inference.queries import encode
from pyrocrl.inference.recipes import get_recipe
from pyrocrl.metrics import monotone_r2


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
    x, arm = codes["test"]["x"].values[:5000, 0], codes["test"]["z"].values[:5000, 0, 0]
    print(
        header(
            "recipe | model seed | DCI disentanglement | intervention accuracy | ELBO | "
            "arm unfolded | min"
        )
    )
    for scale in args.scales:
        recipe = get_recipe("fast").scaled(scale).replace(beta=args.beta)
        for seed in args.seeds:
            start = time.perf_counter()
            _, guide, report = fit_ilcm(
                codes["train"],
                4,
                test=codes["test"],
                dci_train=codes["dci"],
                recipe=recipe,
                seed=seed,
                backend="jax",
                progress=False,
            )
            m = report.metrics
            learned = encode(guide, x)["z"].numpy()
            unfolded = max(monotone_r2(v, arm) for v in learned.T)
            print(
                f"| fast × {scale:g}, β {args.beta:g} | {seed} | {m['dci_disentanglement']:.3f} | "
                f"{m['intervention_accuracy']:.3f} | {m['elbo']:.2f} | {unfolded:.3f} | "
                f"{(time.perf_counter() - start) / 60:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
