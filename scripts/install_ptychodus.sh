#!/usr/bin/env bash
# Install Ptychodus 1.7.0 into a virtual environment layered over the current Python
# environment, so that Ptychodus switches on its PtychoPINN-Torch back end with this project,
# torch and Lightning exactly as installed (the current environment is never changed):
#
#     bash scripts/install_ptychodus.sh      # prints (alone on stdout) the venv's ptychodus
#
# PTYCHODUS_VENV sets the venv folder (default: .venv-ptychodus in the current folder);
# PYTHON the interpreter whose environment it layers over (default: python).
# - The venv sees the current environment's packages (--system-site-packages).
# - Every package already installed is pinned at its installed version (a constraints file
#   from 'pip list'), so nothing here upgrades or downgrades torch, numpy, Pty-chi, ...
# - Ptychodus itself without its dependencies and without any extra (never 'ptychi', whose
#   Pty-chi 2.1 pin would replace ours; never 'gui'), then the runtime modules its batch
#   mode ('ptychodus -b') imports that the project does not already bring: colorcet,
#   hdf5plugin (its version is logged at startup), psutil, watchdog and pydantic-ai-slim's
#   OpenAI model (ptychodus/model/agent/terminal.py). pip then reports that ptychodus
#   requires mlflow-skinny and pydantic-ai, which batch mode never imports: expected.
set -euo pipefail
PYTHON="${PYTHON:-python}"
VENV="${PTYCHODUS_VENV:-$PWD/.venv-ptychodus}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PYTHON" -m venv --system-site-packages "$VENV"
# name==version of everything installed (editable installs included: they are never
# reinstalled, the pin only keeps a dependency from moving them).
"$PYTHON" -m pip list --format=freeze 2>/dev/null | grep -E '^[A-Za-z0-9._-]+==' > "$VENV/constraints.txt"
"$VENV/bin/python" -m pip install -q --no-deps 'ptychodus==1.7.0' 2>&1 \
    | { grep -v -E "is ignored: it is neither" >&2 || true; }
"$VENV/bin/python" -m pip install -q -c "$VENV/constraints.txt" \
    colorcet hdf5plugin psutil watchdog 'pydantic-ai-slim[openai]>=1,<3' 2>&1 \
    | { grep -v -E "^ERROR: pip's dependency resolver|^ptychodus 1\.7\.0 requires|is ignored: it is neither" >&2 \
        || true; }
# The batch-mode import chain and the back end's switch (find_spec, as Ptychodus does).
"$VENV/bin/python" - <<'EOF'
import importlib.util
import ptychodus.model  # noqa: F401
import pydantic_ai.models.openai  # noqa: F401
missing = [m for m in ("ptycho_torch", "lightning") if importlib.util.find_spec(m) is None]
if missing:
    raise SystemExit(f"error: {', '.join(missing)} not importable in the Ptychodus venv "
                     "(install the project into the current environment first)")
EOF
echo "$VENV/bin/ptychodus"
