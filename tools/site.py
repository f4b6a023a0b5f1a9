"""MkDocs hooks that make the course's website (``mkdocs.yml`` names this file; ``make site``).

The site is the solved notebooks as committed, outputs included (mkdocs-jupyter with
``execute: false``), one page each in course order. These hooks add what the notebooks and the
theme do not bring:

- the front page: the README from its title to the end of its course map, with the links to
  ``notebooks/NN_name.ipynb`` pointing at the pages and every other relative link at GitHub;
- MathJax 2.7 from jupyter-server-mathjax, copied into the site, so equations are typeset
  without a CDN (offline, or in a classroom without internet); the notebooks' link to it is
  ``custom_mathjax_url`` in ``mkdocs.yml``;
- the table of contents of a notebook's page with the ids and titles its headings have (those
  mkdocs-jupyter derives leave out a heading's inline code, so their links would not resolve);
- the "Download this notebook" link is in ``tools/site_theme/main.html``, and each notebook's
  Colab badge is in its first cell already (``tools/notebooks.py`` puts it there).

Not part of the learners' package; it imports neither torch nor ``deeplab_utils``.
"""

from __future__ import annotations

import html
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from mkdocs.structure.toc import AnchorLink

ROOT = Path(__file__).resolve().parents[1]
FRONT_PAGE_END = "## Quick start"  # the README's section after the course map
MATHJAX_DIR = "assets/mathjax"
# HTML-CSS output with the STIX-Web fonts, the only web fonts jupyter-server-mathjax ships (the
# configuration Jupyter's classic notebook used with it). Loaded as `config=...,local/course`.
MATHJAX_CONFIG = """\
MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  menuSettings: {zoom: "None"}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/course.js");
"""

_REPOSITORY = re.compile(r'^Repository = "https://github\.com/([^"/]+/[^"/]+)"', re.M)
_COLAB_LINK = re.compile(r"colab\.research\.google\.com/github/([^/\s]+/[^/\s]+)/blob/([^/\s]+)/")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r'<h([1-6])\b[^>]*\bid="([^"]+)"[^>]*>(.*?)</h\1>', flags=re.DOTALL)
_ANCHOR = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', flags=re.DOTALL)
_COURSE_NOTEBOOK = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
_NOTEBOOK_LINK = re.compile(r"^notebooks/(\d\d_[A-Za-z0-9_]+\.ipynb)(#.*)?$")


def front_page(readme: str) -> str:
    """The front page's Markdown: the README up to its "Quick start" section.

    A link to ``notebooks/NN_name.ipynb`` becomes a link to that notebook's page (MkDocs turns
    ``NN_name.ipynb`` into ``NN_name.html`` and checks that it exists); a link to another file of
    the repository, or to a section of the README left out here, goes to GitHub.
    """
    if FRONT_PAGE_END not in readme:
        raise ValueError(f"README.md has no {FRONT_PAGE_END!r} section, where the front page ends")
    page = readme[: readme.index(FRONT_PAGE_END)].rstrip() + "\n"
    colab = _COLAB_LINK.search(page)
    if colab is None:
        raise ValueError("README.md's course map has no Colab badge to take the repository from")
    repo, branch = colab.groups()
    github = f"https://github.com/{repo}"

    def retarget(match: re.Match[str]) -> str:
        target = match.group(1)
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            return match.group(0)
        notebook = _NOTEBOOK_LINK.match(target)
        if notebook:
            return f"]({notebook.group(1)}{notebook.group(2) or ''})"
        if target.startswith("#"):
            return f"]({github}{target})"
        return f"]({github}/blob/{branch}/{target})"

    page = _LINK.sub(retarget, page)
    return page + (
        "\nEach page is a solved notebook as committed, with its outputs: open it in Colab to run "
        "it, or download it. The repository, with the student notebooks and the course's "
        f"package: [{github.removeprefix('https://')}]({github}).\n"
    )


def _mathjax_files(config: MkDocsConfig) -> list[File]:
    package = importlib.util.find_spec("jupyter_server_mathjax")  # found, not imported: no server
    if package is None or package.origin is None:
        raise ModuleNotFoundError("the site needs jupyter-server-mathjax: pip install -e '.[site]'")
    static = Path(package.origin).parent / "static"
    files = [
        File.generated(
            config, f"{MATHJAX_DIR}/{path.relative_to(static).as_posix()}", abs_src_path=str(path)
        )
        for path in sorted(static.rglob("*"))
        if path.is_file()
    ]
    files.append(
        File.generated(config, f"{MATHJAX_DIR}/config/local/course.js", content=MATHJAX_CONFIG)
    )
    return files


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Give the pages the address of the student notebooks on Colab (the exercises), from the
    repository ``pyproject.toml`` names (``python tools/notebooks.py set-repo`` changes it)."""
    pyproject = Path(config.config_file_path).parent / "pyproject.toml"
    found = _REPOSITORY.search(pyproject.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError('pyproject.toml names no Repository = "https://github.com/OWNER/REPO"')
    colab = "https://colab.research.google.com/github"
    config.extra["exercises"] = f"{colab}/{found.group(1)}/blob/main/notebooks/student/"
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Keep the course's notebooks only, and add the front page and MathJax.

    ``notebooks/`` also holds the student notebooks and whatever a run left there (data,
    checkpoints): none of it belongs on the site.
    """
    docs = Path(config.docs_dir).resolve()
    for file in list(files):
        if file.abs_src_path and Path(file.abs_src_path).resolve().is_relative_to(docs):
            if not _COURSE_NOTEBOOK.match(file.src_uri):
                files.remove(file)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=front_page(readme)))
    for file in _mathjax_files(config):
        files.append(file)
    return files


def _toc_items(items: list[AnchorLink]) -> Iterator[AnchorLink]:
    for item in items:
        yield item
        yield from _toc_items(item.children)


def on_page_content(content: str, page: Page, **kwargs: object) -> str:
    """Give a notebook's table of contents the ids and titles of the page's own headings.

    Both list the notebook's headings in order; where their numbers differ the table is left as
    it is (tests/test_site.py then names the link that does not resolve).
    """
    if page.file.src_uri.endswith(".ipynb") and page.toc is not None:
        headings = _HEADING.findall(content)
        items = list(_toc_items(list(page.toc)))
        if len(items) == len(headings):
            for item, (_, anchor, inner) in zip(items, headings, strict=True):
                text = re.sub(r"<[^>]+>", "", _ANCHOR.sub("", inner))
                item.id, item.title = anchor, html.escape(html.unescape(text).strip())
    return content
