"""Every tutorial runs end to end in smoke mode (``CI`` set: small sizes).

They run while the documentation is built (the session fixture ``docs_site`` in
conftest.py): myst-nb executes each tutorial in a Jupyter kernel, and one that raises leaves
a warning naming its file in the build log and a traceback in its page. Running them here a
second time, as scripts, would double the suite's longest part for nothing.
"""

import re
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9]*.py"))


def test_tutorials_exist():
    assert TUTORIALS


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, docs_site):
    failed = [line for line in docs_site.problems() if path.name in line]
    assert not failed, "\n".join(failed) + "\n" + docs_site.log[-3000:]
    page = docs_site.html / "tutorials" / f"{path.stem}.html"
    assert page.exists(), docs_site.log[-3000:]
    html = page.read_text()
    assert "output traceback" not in html, f"{path.name} raised: see {page}"
    assert 'class="cell_output' in html, f"{path.name} shows no outputs"
    shown = path.read_text().count("plt.show()")
    figures = re.findall(r'<img [^>]*src="\.\./_images/[^"]+\.png"', html)
    assert len(figures) >= shown, f"{path.name} shows {shown} figures, its page {len(figures)}"
