"""Shared start-up for the workflow's scripts (Snakemake puts scripts/ on sys.path).

Puts this checkout's ``src/`` first on ``sys.path`` when the checkout has one, so the scripts
always run the library that matches these rules (an older installed adloc never shadows it); a
copy of the workflow without ``src/`` imports the installed adloc (``pip install .``;
.ci/package_check.sh runs the workflow that way). The one place that patches ``sys.path``:
rules/common.smk runs this file for the Snakemake process itself. Re-exports :func:`adloc.workflow.run_script`
and :func:`adloc.workflow.as_list`. A script fetched from a remote module (``github(...)``)
comes without this file and imports both from the installed adloc instead.
"""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and sys.path[:1] != [str(_SRC)]:
    if str(_SRC) in sys.path:
        sys.path.remove(str(_SRC))
    sys.path.insert(0, str(_SRC))

from adloc.workflow import as_list, run_script  # noqa: E402


__all__ = ["run_script", "as_list"]
