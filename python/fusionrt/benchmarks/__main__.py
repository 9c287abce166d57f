"""``python -m fusionrt.benchmarks [pytest options]``: the latency suite, without spelling out
``pytest -p fusionrt.benchmarks.plugin --pyargs fusionrt.benchmarks``.

Example:
    $ python -m fusionrt.benchmarks --fusionrt-bundle runs/late/bundle --benchmark-save=orin-maxn
    $ python -m fusionrt.benchmarks --fusionrt-bundle runs/late/bundle --benchmark-compare \\
          --benchmark-compare-fail=median:10%
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import pytest

    return int(pytest.main(["-p", "fusionrt.benchmarks.plugin", "--pyargs", "fusionrt.benchmarks", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
