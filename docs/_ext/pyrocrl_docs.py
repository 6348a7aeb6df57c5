"""Sphinx extension of the pyrocrl documentation: the API pages, the CLI help and the
tutorial gallery.

At the start of every build it writes one page per module of ``pyrocrl``,
``pyrocrl.models`` and ``pyrocrl.inference`` (and their submodules) into ``docs/api/``:
the module's docstring, a table of every name in its ``__all__``, and a reference entry
(autodoc) for each name the module defines. A name a module re-exports links to its entry
in the module that defines it; a name bound to another library's object (the backend
modules bind Pyro's and NumPyro's primitives) says what it is bound to. So every public
name has exactly one entry, and a name added to an ``__all__`` appears without any edit
here. It also writes the help of every ``pyrocrl`` command for the CLI page
(``docs/_generated/``), and draws the gallery of tutorials (the ``tutorial-gallery``
directive: a card per tutorial, with the first figure it drew).
"""

import ast
import contextlib
import importlib
import inspect
import io
import os
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from docutils import nodes
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

PACKAGES = ("pyrocrl", "pyrocrl.models", "pyrocrl.inference")
"""The installed packages; each heads a tree of modules in the reference."""

API_DIR = "api"
"""Folder of the generated pages, relative to the documentation's source folder."""

LONGEST_VALUE = 70
"""Constants whose ``repr`` is longer than this are shown without their value."""


def module_names(package: str = "pyrocrl") -> list[str]:
    """``package`` and its public submodules, depth first, without the other packages of
    :data:`PACKAGES` (they head trees of their own)."""
    names = [package]
    module = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(getattr(module, "__path__", [])), key=_key):
        child = f"{package}.{info.name}"
        if info.name.startswith("_") or child in PACKAGES:
            continue
        names.extend(module_names(child))
    return names


def _key(info: pkgutil.ModuleInfo) -> tuple[bool, str]:
    return (info.ispkg, info.name)  # modules first, then subpackages


def all_modules() -> list[str]:
    """Every module the reference documents."""
    return [name for package in PACKAGES for name in module_names(package)]


def _top_level_assignments(module: ModuleType) -> tuple[set[str], dict[str, str]]:
    """Names a module assigns at its top level, and those it imports ``from`` a module."""
    source = inspect.getsource(module)
    assigned: set[str] = set()
    imported: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        assigned.add(leaf.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assigned.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
    return assigned, imported


def classify(module: ModuleType, name: str, public: set[str]) -> tuple[str, str]:
    """What ``module.name`` is for the reference: ``("entry", directive)`` for a name
    documented on this module's page, ``("link", target)`` for a re-export of a public
    module's name, ``("alias", target)`` for another library's object."""
    obj = getattr(module, name)
    if inspect.ismodule(obj):
        return "alias", obj.__name__
    home = getattr(obj, "__module__", None)
    if home is not None and (inspect.isclass(obj) or callable(obj)):
        qualname = getattr(obj, "__qualname__", name)
        if home == module.__name__:
            return "entry", _directive(obj)
        if home.split(".")[0] != "pyrocrl":
            return "alias", f"{home}.{qualname}"
        if home in public and qualname in getattr(importlib.import_module(home), "__all__", ()):
            return "link", f"{home}.{qualname}"
        return "entry", _directive(obj)
    assigned, imported = _top_level_assignments(module)
    source = imported.get(name)
    if name not in assigned and source in public:
        if name in getattr(importlib.import_module(source), "__all__", ()):
            return "link", f"{source}.{name}"
    return "entry", "autodata"


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    return "autofunction"


def module_page(name: str, children: list[str], public: set[str]) -> str:
    """The MyST source of one module's page."""
    module = importlib.import_module(name)
    names = list(getattr(module, "__all__", []))
    kinds = {n: classify(module, n, public) for n in names}
    lines = [f"# `{name}`", "", "```{eval-rst}", f".. automodule:: {name}", "   :no-members:", ""]
    if names:
        # full names, outside the module's context (autosummary wants no module prefix)
        lines += [".. rubric:: Public names", "", ".. currentmodule:: None", ""]
        lines += [".. autosummary::", "   :nosignatures:", ""]
        for n in names:
            kind, target = kinds[n]
            if kind != "alias":
                lines.append(f"   ~{target}" if kind == "link" else f"   ~{name}.{n}")
        lines += ["", f".. currentmodule:: {name}", ""]
    aliases = [(n, target) for n, (kind, target) in kinds.items() if kind == "alias"]
    if aliases:
        lines += [".. rubric:: Bound to other libraries", ""]
        lines += [f"- ``{n}``: ``{target}``" for n, target in aliases]
        lines.append("")
    for n in names:
        kind, directive = kinds[n]
        if kind != "entry":
            continue
        lines.append(f".. {directive}:: {name}.{n}")
        if directive in ("autoclass", "autoexception"):
            lines += ["   :members:", "   :show-inheritance:"]
        elif directive == "autodata" and len(repr(getattr(module, n))) > LONGEST_VALUE:
            lines.append("   :no-value:")
        lines.append("")
    lines.append("```")
    if children:
        lines += ["", "```{toctree}", ":maxdepth: 1", ""]
        lines += [f"{child}" for child in children]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def write_api_pages(srcdir: Path) -> list[Path]:
    """Write the API pages into ``srcdir/api`` (only those whose text changed, so an
    incremental build rereads only those), remove pages of modules that are gone."""
    folder = srcdir / API_DIR
    folder.mkdir(exist_ok=True)
    modules = all_modules()
    public = set(modules)
    written = []
    for name in modules:
        prefix = name + "."
        children = [
            m
            for m in modules
            if m.startswith(prefix) and "." not in m[len(prefix) :] and m not in PACKAGES
        ]
        path = folder / f"{name}.md"
        text = module_page(name, children, public)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    for stale in set(folder.glob("pyrocrl*.md")) - set(written):
        stale.unlink()
    return written


COMMANDS = ("simulate", "fit", "query", "graph", "check", "reduce", "info")
"""The subcommands of ``pyrocrl``, in the order the CLI page shows their help."""


def write_cli_help(srcdir: Path) -> Path:
    """Write ``_generated/cli-help.md``: the ``--help`` text of every subcommand, as the
    installed ``pyrocrl`` prints it (80 columns), for the CLI page to include."""
    from pyrocrl.cli import main

    sections = []
    for command in COMMANDS:
        out = io.StringIO()
        with mock.patch.dict(os.environ, {"COLUMNS": "80"}), contextlib.redirect_stdout(out):
            try:
                main([command, "--help"])
            except SystemExit:
                pass
        sections += [f"### `pyrocrl {command}`", "", "```text", out.getvalue().rstrip(), "```", ""]
    path = srcdir / "_generated" / "cli-help.md"
    path.parent.mkdir(exist_ok=True)
    text = "\n".join(sections)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _builder_inited(app: Any) -> None:
    write_api_pages(Path(app.srcdir))
    write_cli_help(Path(app.srcdir))
    modules = all_modules()
    public = set(modules)
    aliases = {}
    for name in modules:
        module = importlib.import_module(name)
        for n in getattr(module, "__all__", []):
            kind, target = classify(module, n, public)
            if kind == "link":
                aliases[f"{name}.{n}"] = target
    app.env.pyrocrl_aliases = aliases


PARAMS_TOGETHER = re.compile(r"^(\s*:param )(\w+(?:, \w+)+):")


def _process_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list):
    """Clean a docstring for the reference: a constant without a docstring of its own shows
    none (not its type's); ``:param a, b:`` (one text for both) keeps both names together
    (Sphinx would read ``a,`` as a type)."""
    if what in ("data", "attribute") and lines:
        own = getattr(type(obj), "__doc__", None)
        if isinstance(own, str) and "\n".join(lines).strip() == inspect.cleandoc(own).strip():
            lines.clear()
            return
    for i, line in enumerate(lines):
        lines[i] = PARAMS_TOGETHER.sub(lambda m: m[1] + m[2].replace(", ", ",") + ":", line)


def _import(dotted: str) -> Any:
    """The object called ``dotted`` (a module, or attributes of one), or ``None``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _unalias(target: str, prefixes: list[str], aliases: dict[str, str]) -> str:
    """``target`` with a re-exported name replaced by its definition's, the name read
    relative to each of ``prefixes`` (innermost first), then in full."""
    for prefix in [*prefixes, ""]:
        full = prefix + target
        for alias, canonical in aliases.items():
            if full == alias or full.startswith(alias + "."):
                return canonical + full[len(alias) :]
    return target


def _candidates(target: str, context: str, objects: Any, aliases: dict[str, str]) -> list[str]:
    """Documented full names that ``target``, written in ``context``, may mean."""
    prefixes = []
    while context:
        prefixes.append(context + ".")
        context = context.rpartition(".")[0]
    target = _unalias(target, prefixes, aliases)
    if target in objects:
        return [target]
    owner, _, member = target.rpartition(".")
    owner_obj = _import(owner) if owner.startswith("pyrocrl.") else None
    for base in getattr(owner_obj, "__mro__", ())[1:]:  # a method a documented class inherits
        inherited = f"{base.__module__}.{base.__qualname__}.{member}"
        if inherited in objects:
            return [inherited]
    found = [name for name in objects if name.endswith("." + target)]
    for prefix in prefixes:  # prefer the module and class the reference is made from
        if len(found) < 2:
            break
        found = [name for name in found if name.startswith(prefix)] or found
    if len(found) == 1:
        return found
    owner = target.partition(".")[0]
    for prefix in prefixes:  # ``Class.method``, with the class named as in its module
        hits = _candidates(prefix + target, "", objects, {}) if _import(prefix + owner) else []
        if hits:
            return hits
    return found


def _page_module(docname: str) -> str | None:
    """The module an API page documents (its summary table has no module context)."""
    folder, _, name = docname.partition("/")
    return name if folder == API_DIR else None


def _resolve(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve what the Python domain could not, for pyrocrl's own names only.

    A re-exported name (``pyrocrl.fit_ilcm``) goes to the entry of the module that defines
    it (``pyrocrl.inference.fit.fit_ilcm``); a short name (``fit_ilcm``, ``Trainer.fit``)
    to the one documented object whose full name ends with it, preferring the module and
    class the reference is made from; a method to the entry of the class that defines it.
    A name that exists in the code but has no entry (not in any ``__all__``: a module's
    private constant, a protocol) is shown as plain text. Anything else stays unresolved,
    and the build warns.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module = node.get("py:module") or _page_module(node["refdoc"])
    context = ".".join(p for p in (module, node.get("py:class")) if p)
    objects = env.get_domain("py").objects
    found = _candidates(target, context, objects, getattr(env, "pyrocrl_aliases", {}))
    if len(found) == 1 and found[0].startswith("pyrocrl."):
        entry = objects[found[0]]
        return make_refnode(
            app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, found[0]
        )
    if not found:
        names = [target, f"{module}.{target}", f"{context}.{target}"]
        if any(n.startswith("pyrocrl.") and _import(n) is not None for n in names):
            return contnode
    return None


# -- the tutorial gallery --------------------------------------------------------------------
TUTORIALS = "tutorials/"
"""Docnames of the tutorials start with this."""


class TutorialGallery(SphinxDirective):
    """``{tutorial-gallery}``: a grid of cards, one per tutorial, each with the first figure
    the tutorial drew (when the tutorials were executed) and its title, linking to it."""

    def run(self) -> list[nodes.Node]:
        return [nodes.container(classes=["pyrocrl-gallery"])]


def _first_figure(app: Any, doctree: nodes.document) -> None:
    """Remember the first image of each tutorial page: its card's thumbnail."""
    docname = app.env.docname
    if not docname.startswith(TUTORIALS):
        return
    thumbnails = app.env.__dict__.setdefault("pyrocrl_thumbnails", {})
    thumbnails.pop(docname, None)
    for image in doctree.findall(nodes.image):
        thumbnails[docname] = (image["uri"], dict(image.get("candidates", {})))
        break


def _purge(app: Any, env: Any, docname: str) -> None:
    getattr(env, "pyrocrl_thumbnails", {}).pop(docname, None)


def _merge(app: Any, env: Any, docnames: Any, other: Any) -> None:
    env.__dict__.setdefault("pyrocrl_thumbnails", {}).update(
        getattr(other, "pyrocrl_thumbnails", {})
    )


def _fill_gallery(app: Any, doctree: nodes.document, docname: str) -> None:
    """Replace the gallery's placeholder by its cards (all pages are read by now)."""
    env = app.env
    tutorials = sorted(d for d in env.found_docs if d.startswith(TUTORIALS))
    thumbnails = getattr(env, "pyrocrl_thumbnails", {})
    for grid in list(doctree.findall(nodes.container)):
        if "pyrocrl-gallery" not in grid["classes"]:
            continue
        for tutorial in tutorials:
            card = nodes.reference(
                refuri=app.builder.get_relative_uri(docname, tutorial),
                internal=True,
                classes=["pyrocrl-card"],
            )
            if tutorial in thumbnails:
                uri, candidates = thumbnails[tutorial]
                card += nodes.image(uri=uri, candidates=candidates, alt="")
            else:
                card += nodes.inline(classes=["pyrocrl-card-blank"])
            card += nodes.inline(text=env.titles[tutorial].astext(), classes=["pyrocrl-title"])
            grid += nodes.paragraph("", "", card)  # HTML wants a link inside a text element


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("tutorial-gallery", TutorialGallery)
    app.connect("doctree-read", _first_figure)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _fill_gallery)
    app.connect("builder-inited", _builder_inited)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("missing-reference", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
