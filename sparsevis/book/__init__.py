"""The book pipeline: stages -> executed notebooks (papermill, cached) -> Jupyter Book (offline).

``python -m sparsevis book --profile demo`` (``make book``) calls :func:`build`:

1. **stages**: the prune stage for every run of the profile (:func:`sparsevis.runner.run_prune`),
   then the study stages (:func:`sparsevis.studies.run_study`), the runs of each stage spread
   over CPU worker processes. Both are cached by run id, so a rerun only checks.
2. **notebooks**: every chapter of :data:`CHAPTERS`, in the book's order, is executed with
   papermill from ``notebooks/<name>.ipynb`` into ``book/_generated/<name>.ipynb`` with its
   parameters injected (papermill records them in the notebook). A notebook is skipped when
   its cache key is unchanged and its executed copy exists: the key hashes the notebook source,
   its parameters, the package sources it depends on, the part of the profile's configuration
   its results come from and the contents of every results table it reads: changing one study's
   setting re-runs that study and the chapters that read it, nothing else.
3. **HTML**: ``jupyter-book build`` with notebook execution off into ``_build/html``; then the
   pinned JavaScript (require.js, the ipywidgets HTML manager, MathJax) is fetched from the npm
   registry once (``_build/vendor``) and copied into ``_build/html/_static/vendor``, where
   ``_config.yml`` points; the executed notebooks (their images left out: the pages show them)
   and the figures' files are copied beside their pages. Nothing is loaded from a CDN
   (:func:`check_offline` verifies it), and the site stays within its page-weight budget.
"""
from __future__ import annotations

from .build import build
from .chapters import (
                       ALL_STAGES,
                       ANALYSIS,
                       CHAPTERS,
                       GENERATED,
                       PAGES_AFTER,
                       ROOT_PAGE,
                       STUDY_STAGES,
                       BookError,
                       Chapter,
                       book_root,
                       chapter_of,
                       check_toc,
                       expected_toc,
                       toc_files,
)
from .html import (
                       PAGE_BUDGET,
                       SITE_BUDGET,
                       build_html,
                       check_offline,
                       check_page_weight,
                       drop_duplicates,
                       drop_unreferenced,
                       extract_inline_images,
                       page_weights,
                       site_weight,
                       strip_notebook_images,
)
from .notebooks import (
                       cache_key,
                       execute_notebooks,
                       notebook_code_version,
                       notebook_parameters,
)
from .results import (
                       config_hash,
                       find_result_dirs,
                       label_of,
                       load_results,
                       resolve_run_path,
                       run_id_of,
)
from .stages import run_stages
from .vendor import VENDOR, fetch_vendor, install_vendor

__all__ = ["ALL_STAGES", "ANALYSIS", "BookError", "CHAPTERS", "Chapter", "GENERATED", "PAGES_AFTER", "PAGE_BUDGET",
           "ROOT_PAGE", "SITE_BUDGET", "STUDY_STAGES", "VENDOR", "book_root", "build", "build_html", "cache_key",
           "chapter_of", "check_offline", "check_page_weight", "check_toc", "config_hash", "drop_duplicates",
           "drop_unreferenced", "execute_notebooks", "expected_toc", "extract_inline_images", "fetch_vendor", "find_result_dirs",
           "install_vendor", "label_of", "load_results", "notebook_code_version", "notebook_parameters",
           "page_weights", "resolve_run_path", "run_id_of", "run_stages", "site_weight", "strip_notebook_images",
           "toc_files"]
