"""tools/layout_report.py on a small synthetic package: cycles (late imports
included), module and function sizes, late project imports, and --check."""
from pathlib import Path

from tools import layout_report


def _report():
    return layout_report


def _tree(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n\n\ndef f():\n    return b\n")
    # b reaches c only inside a function: a hidden edge still closes the cycle b -> c -> b
    (pkg / "b.py").write_text('def g():\n    """doc"""\n    from pkg.sub import c\n'
                              "    import numpy\n    return c, numpy\n")
    (pkg / "sub" / "c.py").write_text("from .. import b\n" + "x = 1\n" * 10)
    long_body = "".join(f"    y{i} = {i}\n" for i in range(7))
    (pkg / "d.py").write_text(f'def long():\n    """doc\n    more"""\n{long_body}')
    return tmp_path


def test_cycles_sizes_and_late_imports(tmp_path):
    lr = _report()
    r = lr.build(_tree(tmp_path), ["pkg"])
    assert r.cycles == [["pkg.b", "pkg.sub.c"]]
    assert r.edges["pkg.a"] == {"pkg.b"} and r.edges["pkg.sub.c"] == {"pkg.b"}
    assert r.late == {"pkg.b": 1}            # numpy is not a project import
    assert r.modules["pkg.sub.c"] == 11
    assert (7, "pkg.d.long") in r.functions  # the docstring is not counted


def test_check_exit_code_and_printout(tmp_path, capsys):
    lr = _report()
    root = _tree(tmp_path)
    args = ["--root", str(root), "--packages", "pkg", "--max-module-lines", "10",
            "--max-function-lines", "6"]
    assert lr.main(args) == 0
    out = capsys.readouterr().out
    assert "import cycles: 1" in out and "cycle: pkg.b <-> pkg.sub.c" in out
    assert "   11  pkg.sub.c" in out and "    7  pkg.d.long" in out
    assert "project imports inside functions: 1" in out
    assert lr.main([*args, "--check"]) == 1
    assert lr.main(["--root", str(root), "--packages", "pkg/sub", "--check"]) == 0
