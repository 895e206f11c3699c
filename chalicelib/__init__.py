"""ghcr2ecr: the App's handlers (app.py) and the copy engine (`ghcr2ecr sync`)."""

import sys

# httpx imports its optional command-line client (click, pygments, rich: about 20 ms at every start) whenever
# those happen to be installed, as chalice's click is. Nothing here uses it: a None entry makes that import
# fail at once, and httpx then defines its stub `httpx.main` instead (httpx/__init__.py, `except ImportError`).
# (typeshed types sys.modules' values as modules only, though the import system documents None there.)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
