"""Memory of a dataset larger than memory: peak RSS while writing, streaming and reducing
a ~20 GB image dataset.

Target: peak RSS < 2 GB in every phase, whatever the dataset's size.

    python benchmarks/scale_memory.py [--pairs 800000] [--base 4096] [--steps 2000]
        [--root runs/benchmarks/scale_memory] [--keep]

How the data are made (phase ``build``): ``--base`` CausalCircuit pairs are rendered once at
64×64 (:func:`~pyrocrl.data.causalcircuit.simulate_causalcircuit`, seed ``--seed``), and
``--pairs`` pairs are written from them into one Zarr store, ``circuit.zarr``, uncompressed
(so that its size on disk is its size: 2 × 64·64·3 bytes a pair, 19.7 GB for 800,000
pairs), in chunks of 512 pairs, by :func:`~pyrocrl.data.writer.write_pairs`. Copy ``c`` of the
base (pairs ``c·base … (c+1)·base − 1``) holds the base pairs in the order of
``numpy.random.default_rng([seed, c]).permutation(base)``, its images mirrored left to right
when ``c`` is odd; the truth (``z``, ``noise``, ``target``, ``state``) is that of the base
pair (a mirrored copy's truth is its unmirrored picture's). Memory holds the base and the
truth, and one copy (a block) of images at a time.

Then (phase ``train``) the store is opened lazily and an image VAE (``d`` = 8) is trained on
all its distinct images by streaming (:func:`~pyrocrl.inference.reduce.fit_image_vae`, batch
64, ``--steps`` steps, one torch thread), and (phase ``reduce``) every pair is encoded
block by block (:func:`~pyrocrl.inference.reduce.reduce`), which reads the whole store.

Each phase runs in a process of its own. Its peak RSS is measured twice: by the process
itself (``ru_maxrss`` of ``getrusage``, plus that of its largest child: the rendering
processes of ``build``), and by sampling ``/proc`` every 0.1 s for the summed resident set of
the process and all its children (which catches children that run at the same time; the
sum counts shared library pages once per process, so the summed proportional set size,
PSS, is shown beside it). The target is judged on the larger of the two RSS figures. The
store is deleted at the end unless ``--keep`` (a later run with ``--keep`` reuses it).
Prints a markdown table.
"""

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from _runner import header, met

ROOT = Path(__file__).resolve().parents[1]
RESOLUTION = 64
CHUNK_PAIRS = 512
BATCH = 64
TARGET_BYTES = 2 * 10**9


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=800_000)
    parser.add_argument("--base", type=int, default=4096, help="pairs rendered once")
    parser.add_argument("--steps", type=int, default=2000, help="VAE training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--root", type=Path, default=ROOT / "runs/benchmarks/scale_memory")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the store")
    parser.add_argument("--phase", choices=("build", "train", "reduce"), help=argparse.SUPPRESS)
    return parser


# -- the phases, each in a process of its own ------------------------------------------------
def _peaks() -> dict[str, int]:
    """Peak resident set of this process and of its largest child, in bytes."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"rss_self": own, "rss_children": child}


def build(args: argparse.Namespace, store: Path) -> dict:
    import numpy as np

    from pyrocrl.data import pairs_dataset
    from pyrocrl.data.causalcircuit import simulate_causalcircuit
    from pyrocrl.data.writer import placeholder, write_pairs

    start = time.perf_counter()
    base = simulate_causalcircuit(
        args.base, args.seed, resolution=RESOLUTION, workers=args.workers, progress=False
    )
    rendered = time.perf_counter() - start
    pixels = base["x"].values  # (base, 2, F)
    copies = math.ceil(args.pairs / args.base)
    index = np.concatenate(
        [np.random.default_rng([args.seed, c]).permutation(args.base) for c in range(copies)]
    )[: args.pairs]
    truth = {name: base[name].values[index] for name in ("z", "noise", "state")}
    attrs = {**base.attrs, "tiled_from": args.base, "tile_seed": args.seed}
    template = pairs_dataset(
        placeholder(args.pairs, pixels.shape[2]),
        z=truth["z"][:, 0],
        z_tilde=truth["z"][:, 1],
        noise=truth["noise"][:, 0],
        noise_tilde=truth["noise"][:, 1],
        target=base["target"].values[index],
        adjacency=base["adjacency"].values,
        attrs=attrs,
    ).assign(state=(("pair", "world", "latent"), truth["state"]))

    def blocks():
        for c in range(copies):
            chosen = index[c * args.base : (c + 1) * args.base]
            block = pixels[chosen]
            if c % 2:
                shape = (len(chosen), 2, RESOLUTION, RESOLUTION, 3)
                block = np.ascontiguousarray(block.reshape(shape)[:, :, :, ::-1])
            yield block

    write_pairs(store, template, blocks(), chunk_pairs=CHUNK_PAIRS, compress=False)
    return {"seconds": time.perf_counter() - start, "render_seconds": rendered}


def train(args: argparse.Namespace, store: Path) -> dict:
    import torch

    from pyrocrl.data import load
    from pyrocrl.inference.image_sources import HELD, distinct_items
    from pyrocrl.inference.reduce import fit_image_vae, save_image_vae

    torch.set_num_threads(1)
    start = time.perf_counter()
    lazy = load(store, chunks="auto")
    per_epoch = (len(distinct_items(lazy)) - HELD) // BATCH
    vae, report = fit_image_vae(
        lazy,
        dim=8,
        epochs=args.steps / per_epoch,
        max_images=None,
        batch_size=BATCH,
        seed=args.seed,
        progress=False,
    )
    save_image_vae(vae, store.parent / "vae.pt")
    return {
        "seconds": time.perf_counter() - start,
        "steps": report["steps"],
        "images": report["images"],
        "elbo": report["elbo"],
        "mse": report["mse"],
    }


def reduce_all(args: argparse.Namespace, store: Path) -> dict:
    import torch

    from pyrocrl.data import load, save
    from pyrocrl.inference.reduce import load_image_vae, reduce

    torch.set_num_threads(1)
    start = time.perf_counter()
    lazy = load(store, chunks="auto")
    codes = reduce(load_image_vae(store.parent / "vae.pt"), lazy)
    save(codes, store.parent / "codes.zarr")
    return {"seconds": time.perf_counter() - start, "images": 2 * codes.sizes["pair"]}


PHASES = {"build": build, "train": train, "reduce": reduce_all}


# -- the driver: each phase in a child process, its resident set sampled -------------------
def _tree_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of process ``pid`` and all its descendants (from ``/proc``): the sum
    of their resident sets (which counts the pages they share once per process), and of
    their proportional set sizes (shared pages split among the processes sharing them)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    rss, pss, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(parents.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
        except OSError:
            continue
        rss += _kib(status, "VmRSS:")
        pss += _kib(rollup, "Pss:")
    return rss, pss


def _kib(text: str, key: str) -> int:
    """Bytes of the first line of ``/proc`` text that starts with ``key`` (in kB)."""
    line = next((line for line in text.splitlines() if line.startswith(key)), None)
    return int(line.split()[1]) * 1024 if line else 0


def _run_phase(name: str, args: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--phase", name]
    argv += ["--pairs", str(args.pairs), "--base", str(args.base), "--steps", str(args.steps)]
    argv += ["--seed", str(args.seed), "--workers", str(args.workers), "--root", str(args.root)]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    peak = {"rss": 0, "pss": 0}

    def sample() -> None:
        while process.poll() is None:
            rss, pss = _tree_rss(process.pid)
            peak.update(rss=max(peak["rss"], rss), pss=max(peak["pss"], pss))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"phase {name} failed with status {process.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(phase=name, wall=time.perf_counter() - started)
    result.update(rss_tree=peak["rss"], pss_tree=peak["pss"])
    return result


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f} GB"


def main() -> None:
    args = _parser().parse_args()
    store = args.root / "circuit.zarr"
    if args.phase is not None:  # a child process: run it, print its result last
        result = PHASES[args.phase](args, store)
        print(json.dumps({**result, **_peaks()}))
        return
    args.root.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; data in {store}", flush=True)
    results = []
    if not (args.keep and store.is_dir()):
        results.append(_run_phase("build", args))
        print(json.dumps(results[-1]), flush=True)
    size = _size(store)
    for name in ("train", "reduce"):
        results.append(_run_phase(name, args))
        print(json.dumps(results[-1]), flush=True)
    print()
    print(
        header(
            "phase | pairs | size on disk | steps / images | wall time (s) | peak RSS "
            "(process, largest child) | peak RSS summed over the process tree (PSS) | < 2 GB"
        )
    )
    for r in results:
        work = {
            "build": f"{args.base} rendered, {args.pairs} written",
            "train": f"{r.get('steps')} steps of {BATCH} ({r.get('images')} images)",
            "reduce": f"{r.get('images')} images encoded",
        }[r["phase"]]
        peak = max(r["rss_self"], r["rss_children"], r["rss_tree"])
        print(
            f"| {r['phase']} | {args.pairs} | {_gb(size)} | {work} | {r['wall']:.0f} | "
            f"{_gb(r['rss_self'])}, {_gb(r['rss_children'])} | {_gb(r['rss_tree'])} "
            f"({_gb(r['pss_tree'])}) | {met(peak < TARGET_BYTES)} |"
        )
    train_result = next(r for r in results if r["phase"] == "train")
    print(
        f"\nVAE after {train_result['steps']} steps: ELBO {train_result['elbo']:.1f} per image, "
        f"reconstruction MSE {train_result['mse']:.4f}"
    )
    if not args.keep:
        shutil.rmtree(store)
        shutil.rmtree(args.root / "codes.zarr", ignore_errors=True)
        print(f"removed {store}")


if __name__ == "__main__":
    main()
