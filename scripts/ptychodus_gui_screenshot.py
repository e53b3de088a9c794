"""Screenshot of the Ptychodus 1.7.0 GUI with this project as its back end (docs/images/).

Runs in Ptychodus' venv (``scripts/install_ptychodus.sh``, then PyQt5 into that venv) under
a virtual X server, with this checkout first on ``PYTHONPATH``:

    .venv-ptychodus/bin/python -m pip install PyQt5
    PYTHONPATH=$PWD xvfb-run -a -s "-screen 0 1400x900x24" .venv-ptychodus/bin/python \\
        scripts/ptychodus_gui_screenshot.py IN OUT/product.000001.h5 docs/images/ptychodus_gui.png

``IN``: a ``ptychodus -b`` input folder (``settings.ini`` choosing
``ptychopinn-torch_unsupervised``, ``diffraction.h5``); the product: what ``-b reconstruct``
wrote. The GUI starts as ``ptychodus`` does, opens both, and the picture puts two grabs of
its main window side by side: the Processing panel (the algorithm chosen, its settings) and
the Object panel showing the reconstruction's object (Ptychodus' complex colouring: hue =
phase, value = amplitude).
"""
from __future__ import annotations

import sys
from pathlib import Path

import ptychodus
from ptychodus.controller import ControllerCore
from ptychodus.model import ModelCore
from ptychodus.view import ViewCore
from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QPainter, QPixmap
from PyQt5.QtWidgets import QApplication, QComboBox

SIZE = (1200, 800)
SETTLE_MS = 2500


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: ptychodus_gui_screenshot.py IN_DIR PRODUCT_H5 OUT_PNG", file=sys.stderr)
        return 2
    folder, product, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    with ModelCore(folder / "settings.ini") as model:
        app = QApplication(sys.argv[:1])
        view = ViewCore(is_developer_mode_enabled=False)
        ControllerCore(model, view, is_developer_mode_enabled=False).show_main_window(
            ptychodus.VERSION_STRING)
        model.settings_registry.open_settings(folder / "settings.ini")
        data = model.workflow_api.load_assembled_diffraction_data(folder / "diffraction.h5")
        model.workflow_api.load_product(product, diffraction=data)
        view.resize(*SIZE)
        grabs: list[QPixmap] = []

        def processing() -> None:
            view.processing_action.trigger()
            for combo in view.processing_view.findChildren(QComboBox):
                if combo.findText(product.stem) < 0 and combo.findText("Unnamed") >= 0:
                    combo.setCurrentIndex(combo.count() - 1)     # the product just loaded
            QTimer.singleShot(SETTLE_MS, obj)

        def obj() -> None:
            grabs.append(view.grab())
            view.object_action.trigger()
            tree = view.object_view.tree_view
            tree.setCurrentIndex(tree.model().index(tree.model().rowCount() - 1, 0))
            QTimer.singleShot(SETTLE_MS, fit)

        def fit() -> None:
            view.object_image_view.image_ribbon.image_tools_group_box.home_button.click()
            QTimer.singleShot(SETTLE_MS, finish)

        def finish() -> None:
            grabs.append(view.grab())
            w, h = sum(g.width() for g in grabs), max(g.height() for g in grabs)
            canvas = QPixmap(w, h)
            painter = QPainter(canvas)
            x = 0
            for g in grabs:
                painter.drawPixmap(x, 0, g)
                x += g.width()
            painter.end()
            out.parent.mkdir(parents=True, exist_ok=True)
            canvas.save(str(out))
            app.quit()

        QTimer.singleShot(SETTLE_MS, processing)
        app.exec()
    print(out)
    return 0 if out.is_file() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
