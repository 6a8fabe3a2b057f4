"""Cost of a fine-pitch capture setup on 512 x 512 substrate captures, each part on and off, two rounds:
the sub-pixel fit (registration) and the grey-level check (candidate finding). Prints ms per capture.

    .venv/bin/python scripts/bench_fine_pitch_cost.py
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from aoi.data.substrate import capture, generate_design
from aoi.detection.candidates import CandidateConfig, find_candidates
from aoi.detection.tolerance import learn_fine_pitch_setup
from aoi.registration import RegistrationConfig, align_pair

CAPTURES = 30


def main() -> None:
    rng = np.random.default_rng(5)
    design = generate_design(rng)
    good = [capture(design, rng, None, shifted=i % 2 == 1) for i in range(3)]
    setup = learn_fine_pitch_setup([(g.test, g.template, ()) for g in good], CandidateConfig())
    caps = [capture(design, rng, None, shifted=True) for _ in range(CAPTURES)]
    for round_no in (1, 2):
        for subpixel in (False, True):
            t0 = time.perf_counter()
            for c in caps:
                align_pair(c.test, c.template, RegistrationConfig(subpixel=subpixel))
            ms = (time.perf_counter() - t0) / CAPTURES * 1e3
            print(f"round {round_no} register, subpixel={subpixel}: {ms:.2f} ms")
        aligned = [(c, align_pair(c.test, c.template, setup.registration)) for c in caps]
        for grey in (0.0, setup.candidates.grey_threshold):
            config = replace(setup.candidates, grey_threshold=grey)
            t0 = time.perf_counter()
            for c, a in aligned:
                find_candidates(c.test, a.template_aligned, a.test_bin, a.template_bin_aligned, a.valid, config)
            ms = (time.perf_counter() - t0) / CAPTURES * 1e3
            print(f"round {round_no} candidates, grey_threshold={grey}: {ms:.2f} ms")


if __name__ == "__main__":
    main()
