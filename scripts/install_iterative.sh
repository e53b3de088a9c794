#!/usr/bin/env bash
# Install the optional Pty-chi extra ('iterative') beside the torch that is already installed,
# without ever replacing that torch. Run from anywhere, after the project itself is installed:
#
#     bash scripts/install_iterative.sh
#
# A CUDA build of torch takes Pty-chi with its torchvision from PyPI (the matching CUDA
# wheel imports fine). A CPU build takes Pty-chi without torchvision: PyPI's Linux torchvision
# wheels are CUDA builds that do not import beside a CPU torch and then break 'import
# lightning'; ptycho_torch/ptychi/_torchvision.py supplies the one torchvision function
# Pty-chi imports. pip then reports that ptychi requires torchvision (and mypy): expected, the
# exit status is 0 (docs/guide/quickstart.md, "Installing Pty-chi").
set -euo pipefail
PYTHON="${PYTHON:-python}"
TORCH_VERSION="$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])')"
TORCH_CUDA="$("$PYTHON" -c 'import torch; print(torch.version.cuda or "")')"
PIN="torch==${TORCH_VERSION}"
if [[ -n "$TORCH_CUDA" ]]; then
    echo "torch ${TORCH_VERSION} (CUDA ${TORCH_CUDA}): Pty-chi with torchvision"
    "$PYTHON" -m pip install -q "$PIN" 'ptychi==2.2.0' torchvision
else
    echo "torch ${TORCH_VERSION} (CPU): Pty-chi without torchvision"
    "$PYTHON" -m pip install -q --no-deps 'ptychi==2.2.0'
    "$PYTHON" -m pip install -q "$PIN" pandas scikit-learn h5py tifffile 'pydantic>=2,<3' tqdm
fi
"$PYTHON" -c 'from ptycho_torch.ptychi import import_ptychi; import_ptychi(); print("Pty-chi imports")'
