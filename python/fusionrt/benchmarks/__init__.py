"""Latency measurement of bundles with the deployment install alone (numpy, ``fusionrt._C`` and the
``onnx`` extra; never torch): the ``fusionrt bench`` command and a pytest-benchmark regression suite.

* :mod:`.measure` times a callable in one block of calls and reduces the samples to percentiles,
* :mod:`.workload` builds the two paths measured: the graph alone and raw text + images end to end,
* :mod:`.host` fingerprints the machine, :mod:`.jetson` and :mod:`.gpu` add what a Jetson or GPU has,
* :mod:`.worker` measures one bundle in a fresh process, :mod:`.runner` runs one worker per bundle,
* :mod:`.report` is the versioned JSON schema (``"schema": "fusionrt.bench/1"``),
* ``test_latency.py`` with :mod:`.plugin` is the pytest-benchmark suite.

Example:
    $ fusionrt bench runs/late/bundle --batch 1,8 --seconds 3 --json late.json
    $ pytest -p fusionrt.benchmarks.plugin --pyargs fusionrt.benchmarks --fusionrt-bundle runs/late/bundle \\
          --benchmark-save=orin-maxn
"""
