"""This test session's random seed: FUSIONRT_TEST_SEED=<n> reproduces a run; otherwise every session
draws new inputs. A module of its own so that tests seeding other generators (hypothesis) import the
same value as conftest's fixtures."""

from __future__ import annotations

import os
import secrets

SESSION_SEED = int(os.environ.get("FUSIONRT_TEST_SEED", secrets.randbits(32)))
