"""Running fusionrt as the deployment install sees it, for the benchmark tests: a child Python in which
torch, torchvision, transformers, timm and the repository's training package cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Modules a deployment install does not have. ``sys.modules[name] = None`` makes ``import name`` raise
#: ImportError and ``importlib.util.find_spec(name)`` answer None, as for a package that is not installed.
HIDDEN = ("torch", "torchvision", "transformers", "timm", "training")


def deployment_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import :data:`HIDDEN` (a ``sitecustomize`` on PYTHONPATH)."""
    hide = tmp_path / "deployment-only"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in HIDDEN)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "FUSIONRT_BENCH"))}
    env["PYTHONPATH"] = str(hide)
    return env


def run_deployed(argv: list[str], tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python argv...`` in ``tmp_path`` (outside the checkout) with the deployment environment."""
    return subprocess.run([sys.executable, *argv], cwd=tmp_path, env=deployment_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout, check=False)
