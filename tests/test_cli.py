import json
import subprocess
import sys

import pytest

from pyrocrl.cli import main
from pyrocrl.data import load


def test_simulate_writes_a_readable_file(tmp_path, capsys):
    out = tmp_path / "pairs.nc"
    png = tmp_path / "pairs.png"
    args = ["simulate", "scaling", "--n", "3", "--pairs", "200", "--seed", "5", "-o", str(out)]
    assert main([*args, "--plot", str(png)]) == 0
    ds = load(out)
    assert ds.sizes["pair"] == 200 and ds.sizes["latent"] == 3
    assert ds.attrs["sample_seed"] == 5 and ds.attrs["graph_seed"] == 5
    assert png.stat().st_size > 10_000
    assert "200 pairs" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "true graph" in capsys.readouterr().out


def test_graph_seed_option(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    main(["simulate", "--pairs", "50", "--seed", "1", "--graph-seed", "9", "-o", str(a)])
    main(["simulate", "--pairs", "50", "--seed", "2", "--graph-seed", "9", "-o", str(b)])
    assert (load(a)["mixing"] == load(b)["mixing"]).all()


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["simulate", "--n", "0"], 2, "--n: must be at least 1"),
        (["simulate", "--pairs", "many"], 2, "expected a whole number"),
        (["simulate", "--seed", "-3"], 2, "non-negative"),
        (["simulate", "cubes"], 2, "invalid choice"),
        (["simulate", "toy2d", "--n", "3"], 1, "exactly 2 causal variables"),
        (["simulate", "causalcircuit", "--n", "5"], 1, "exactly 4 causal variables"),
        (["simulate", "causalcircuit", "--resolution", "4"], 2, "at least 8 pixels"),
        (["simulate", "causalcircuit", "--resolution", "1024"], 1, "at most 512"),
        (["info", "missing.nc"], 1, "no dataset file"),
        (["fit", "--candidates", "0"], 2, "must be at least 1"),
        (["fit", "--candidates", "2", "--select-epoch", "9"], 1, "select_epoch < epochs"),
        (["fit", "--select-epoch", "1"], 1, "give --candidates K"),
        (["simulate", "causalcircuit", "--max-targets", "2"], 1, "one variable at a time"),
        (["simulate", "causal3dident", "--n", "5"], 1, "has 9 causal variables here"),
        (["simulate", "causal3dident", "--variables", "pos_x,tail"], 1, "unknown Causal3DIdent"),
        (["simulate", "causal3dident", "--shape", "cow"], 2, "invalid choice"),
        (["simulate", "causal3dident", "--pair-share", "0.5"], 1, "image datasets hold pairs"),
        (["simulate", "scaling", "--shape", "blob"], 1, "options of causal3dident"),
        (["simulate", "--n", "3", "--max-targets", "4"], 1, "max_targets ≤ n"),
        (["fit", "--pairs", "300", "--device", "cuda:63"], 1, "PyTorch sees"),
        (["fit", "--pairs", "300", "--device", "tpu0"], 1, "unknown device 'tpu0'"),
        (["fit", "--device", "cpu", "--accelerator", "gpu"], 1, "contradicts --device cpu"),
        (["fit", "--devices", "0"], 2, "must be at least 1"),
        ([], 2, "required"),
    ],
)
def test_bad_arguments_give_one_line(argv, status, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        result = main(argv)
    except SystemExit as exit_:
        result = exit_.code
    assert result == status
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_console_script_help():
    run = subprocess.run(
        [sys.executable, "-m", "pyrocrl.cli", "simulate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "example: pyrocrl simulate scaling" in run.stdout


def test_fit_with_candidates_keeps_the_best(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "fit",
        "--n",
        "2",
        "--pairs",
        "400",
        "--test-pairs",
        "200",
        "--recipe-scale",
        "0.05",
        "--candidates",
        "2",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [c["candidate"] for c in results["selection"]] == [0, 1]
    assert results["recipe_settings"]["select_epoch"] == pytest.approx(0.05 * 3.5 * 6 / 7)
    assert "2 candidates" in capsys.readouterr().out


def test_fit_with_the_annealed_recipe(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "fit",
        "--n",
        "2",
        "--pairs",
        "400",
        "--test-pairs",
        "200",
        "--recipe",
        "fast-anneal",
        "--recipe-scale",
        "0.05",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    settings = json.loads((out / "results.json").read_text())["recipe_settings"]
    assert settings["lr_decay"] == pytest.approx([0.05 * 2.75, 0.05 * 3.5])
    assert settings["final_lr_factor"] == 0.01
    capsys.readouterr()
    assert main(["fit", "--recipe", "slow", "-o", str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err
    assert "unknown recipe 'slow'" in err and "fast-anneal" in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture
def tiny_run(tmp_path):
    """A dataset of 300 pairs (n = 2) and a checkpoint of a briefly trained ILCM."""
    from pyrocrl.inference.fit import fit_ilcm
    from pyrocrl.inference.recipes import Recipe

    data = tmp_path / "pairs.nc"
    assert main(["simulate", "--n", "2", "--pairs", "300", "-o", str(data)]) == 0
    short = Recipe(name="short", epochs=0.5, pretrain_epochs=0.1, beta_ramp=(0.1, 0.2))
    fit_ilcm(load(data), 2, recipe=short, output=tmp_path / "run", hidden=(8, 8), progress=False)
    return data, tmp_path / "run" / "checkpoint.pt"


def test_query_smoke(tiny_run, tmp_path, capsys):
    import torch
    import xarray as xr

    data, checkpoint = tiny_run
    ckpt = str(checkpoint)
    capsys.readouterr()
    cf = tmp_path / "cf.nc"
    assert (
        main(
            [
                "query",
                ckpt,
                "--data",
                str(data),
                "--counterfactual",
                "--do",
                "z2=0.5",
                "-o",
                str(cf),
            ]
        )
        == 0
    )
    ds = load(cf)
    assert (ds["target"].values == 2).all()
    assert torch.allclose(torch.as_tensor(ds["z"].values[:, 1, 1]), torch.tensor(0.5))
    post = tmp_path / "post.nc"
    assert main(["query", ckpt, "--data", str(data), "--posterior", "-o", str(post)]) == 0
    probs = xr.load_dataset(post, engine="h5netcdf")["probs"].values
    assert probs.shape == (300, 3)
    assert main(["query", ckpt, "--interventional", "--do", "z3=1", "-o", str(cf)]) == 1
    err = capsys.readouterr().err
    assert "cannot intervene on z3: the model has z1 … z2" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["query", ckpt, "--counterfactual", "--do", "z1=1", "-o", str(cf)]) == 1
    assert "needs observations" in capsys.readouterr().err


def test_graph_smoke(tiny_run, tmp_path, capsys):
    data, checkpoint = tiny_run
    out, png = tmp_path / "graph.json", tmp_path / "graph.png"
    argv = ["graph", str(checkpoint), "--data", str(data), "-o", str(out)]
    assert main([*argv, "--plot", str(png)]) == 0
    found = json.loads(out.read_text())
    assert found["variables"] == ["z1", "z2"] and len(found["adjacency"]) == 2
    assert png.stat().st_size > 5000
    assert "adjacency (row = cause" in capsys.readouterr().out


def test_check_smoke(tiny_run, tmp_path, capsys):
    pytest.importorskip("arviz_stats")
    from pyrocrl.inference.diagnostics import load_datatree

    data, checkpoint = tiny_run
    out = tmp_path / "check"
    argv = ["check", str(checkpoint), "--data", str(data), "--pairs", "100", "--samples", "25"]
    assert main([*argv, "--scm", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "elpd_per_pair" in printed and "calibration_ece" in printed
    assert "r_hat" in printed  # the Bayesian SCM's table
    tree = load_datatree(out / "check.nc")
    assert {"posterior", "log_likelihood", "graph", "scm"} <= set(tree.children)
    assert tree["posterior"].sizes["pair"] == 100
    for name in ("ppc.png", "pareto_k.png", "calibration.png", "graph.png"):
        assert (out / name).stat().st_size > 5000


def test_causal3dident_simulate_a_subset(tmp_path, capsys):
    path, png = tmp_path / "scenes.zarr", tmp_path / "scenes.png"
    argv = ["simulate", "causal3dident", "--pairs", "40", "--resolution", "16"]
    argv += ["--shape", "blob", "--variables", "hue_spot,pos_x,spot", "--workers", "1"]
    assert main([*argv, "-o", str(path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "40 pairs of 16×16×3 images" in out and "shape=blob" in out
    ds = load(path)
    assert ds.attrs["variables"] == "pos_x,spot,hue_spot"  # in the canonical order
    assert ds["z"].shape == (40, 2, 3) and png.stat().st_size > 5_000


def test_causalcircuit_simulate_reduce_fit(tmp_path, capsys):
    images, codes = tmp_path / "circuit.nc", tmp_path / "codes.nc"
    png = tmp_path / "circuit.png"
    argv = ["simulate", "causalcircuit", "--pairs", "700", "--resolution", "16"]
    assert main([*argv, "--workers", "1", "-o", str(images), "--plot", str(png)]) == 0
    assert "700 pairs of 16×16×3 images" in capsys.readouterr().out
    assert png.stat().st_size > 5_000
    assert main(["reduce", str(images), "--dim", "3", "--epochs", "0.2", "-o", str(codes)]) == 0
    out = capsys.readouterr().out
    assert "700 pairs of 3-dimensional observations" in out
    assert (tmp_path / "codes.vae.pt").exists()
    assert not (tmp_path / "codes.vae.pt.training").exists()  # the checkpoint is done with
    ds = load(codes)
    assert ds.attrs["reduced_from"] == "images" and "z" in ds
    # an image dataset goes through reduce, not straight into an ILCM
    assert main(["fit", "--data", str(images), "-o", str(tmp_path / "run")]) == 1
    assert "reduce them to features first" in capsys.readouterr().err
