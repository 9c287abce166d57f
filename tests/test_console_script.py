"""The installed ``fusionrt`` console script runs the training commands (``study``, ``export``) as the
README documents them: from a checkout's root, from any other folder while fusionrt is installed from
a checkout (editable), and says what to do where there is no checkout or no training extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fusionrt.cli import training_checkout

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("fusionrt")


def run(args: list[str], cwd: Path, python: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", python, *args] if python is not None else [str(SCRIPT), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("command", "usage"), [("study", "usage: fusionrt study"), ("export", "usage: fusionrt export")])
@pytest.mark.parametrize("where", ["repository root", "another folder"])
def test_installed_script_runs_the_training_commands(tmp_path, command, usage, where):
    if not SCRIPT.is_file():
        pytest.skip(f"no fusionrt console script beside {sys.executable} (fusionrt is not pip-installed here)")
    pytest.importorskip("torch", reason="the training commands need the train extra")
    result = run([command, "--help"], REPO if where == "repository root" else tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage)


def checkout(root: Path) -> Path:
    """A folder laid out as a fusionrt checkout (what training_checkout looks for)."""
    (root / "training").mkdir(parents=True)
    (root / "training" / "__init__.py").write_text("")
    (root / "python" / "fusionrt").mkdir(parents=True)
    return root


def test_checkout_from_the_package_an_editable_install_runs(tmp_path):
    root = checkout(tmp_path / "src")
    assert training_checkout(cwd=tmp_path, package=root / "python" / "fusionrt") == root


def test_checkout_from_the_current_folder_or_one_above(tmp_path):
    root = checkout(tmp_path / "src")
    site_packages = tmp_path / "venv" / "lib" / "site-packages" / "fusionrt"  # a wheel install: no checkout
    assert training_checkout(cwd=root, package=site_packages) == root
    (root / "runs" / "late").mkdir(parents=True)
    assert training_checkout(cwd=root / "runs" / "late", package=site_packages) == root


def test_a_training_folder_alone_is_not_a_checkout(tmp_path):
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "__init__.py").write_text("")
    assert training_checkout(cwd=tmp_path, package=tmp_path / "venv" / "fusionrt") is None


def test_this_repository_is_found_from_anywhere_while_installed_from_it(tmp_path):
    import fusionrt

    if not Path(fusionrt.__file__).resolve().is_relative_to(REPO):
        pytest.skip("fusionrt is not installed from this checkout (not editable)")
    assert training_checkout(cwd=tmp_path) == REPO


#: main() with no checkout to find, in a process whose sys.path lacks the repository.
NO_CHECKOUT = "import sys; from fusionrt import cli; cli.training_checkout = lambda: None; sys.exit(cli.main(sys.argv[1:]))"


@pytest.mark.parametrize("command", ["study", "export"])
def test_without_a_checkout_the_error_says_where_to_run(tmp_path, command):
    result = run([command, "--help"], tmp_path, python=NO_CHECKOUT)
    assert result.returncode == 2
    assert f"fusionrt {command} needs the training package" in result.stderr
    assert "run it in a fusionrt checkout" in result.stderr and "pip install -e ." in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_training_dependency_names_the_extra(tmp_path):
    # torch "not installed": importing it fails as a missing module does.
    hide_torch = "import sys; sys.modules['torch'] = None; from fusionrt import cli; sys.exit(cli.main(sys.argv[1:]))"
    result = run(["study", "--help"], REPO, python=hide_torch)
    assert result.returncode == 2
    assert "fusionrt study needs 'torch', which is not installed: pip install 'fusionrt[train]'" in result.stderr
