"""The scaling study's smoke run: fits, results file, table and plot; a rerun resumes."""

import subprocess
import sys
from pathlib import Path

import xarray as xr

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling_study.py"


def test_quick_study_writes_results_and_resumes(tmp_path):
    command = [sys.executable, str(SCRIPT), "--quick", "--root", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    results = xr.load_dataset(tmp_path / "results.nc", engine="h5netcdf")
    assert dict(results.sizes) == {"method": 3, "n": 2, "data_seed": 1, "model_seed": 1}
    assert set(results["method"].values) == {"ilcm", "dvae", "betavae"}
    d = results["dci_disentanglement"].values
    assert ((d >= 0) & (d <= 1)).all()
    assert (tmp_path / "dci.png").stat().st_size > 5000
    table = (tmp_path / "table.md").read_text()
    assert "| ILCM | 3 |" in table and "| β-VAE | 2 |" in table
    fits = sorted(tmp_path.glob("*/n*/checkpoint.pt"))
    assert len(fits) == 6
    stamps = [p.stat().st_mtime_ns for p in fits]
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in fits] == stamps  # nothing was refitted
