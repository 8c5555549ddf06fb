"""Runtime verifier. Importing this package must not import torch: only its functions do.
Used as:

    with mplint.runtime.audit() as report:
        train_step(model, batch)
    report.assert_clean()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mplint.findings import Finding

# Where `verify`/`audit` run the code: auto = CUDA when available, else CUDA emulated on the CPU.
DEVICES = ("auto", "cuda", "cpu", "emulate-cuda")


class AuditReport:
    """Filled in when the `audit()` block ends: the findings, with verdicts, of what ran inside."""

    def __init__(self) -> None:
        self.findings: tuple[Finding, ...] = ()

    @property
    def problems(self) -> tuple[Finding, ...]:
        """Findings confirmed at run time or seen only at run time."""
        return tuple(finding for finding in self.findings if finding.verdict in ("confirmed", "runtime-only"))

    def assert_clean(self) -> None:
        if self.problems:
            from mplint.report.text import render

            raise AssertionError(f"mixed-precision problems seen at run time:\n{render(self.problems)}")


@contextlib.contextmanager
def audit(device: str = "auto", *, static: bool = True) -> Iterator[AuditReport]:
    """Record the block's ops, optimizer steps and backward passes; join the static findings.

    `device` is as for `mplint verify --device`; user code is the files under the working
    directory. With `static=False` only runtime-only findings are reported.
    """
    from mplint.runtime.join import join, static_findings
    from mplint.runtime.session import Session
    from mplint.runtime.sites import UserCode

    report = AuditReport()
    session = Session(device, UserCode([os.getcwd()]))
    try:
        with session:
            yield report
    finally:
        observations = session.log.freeze()
        sites = [
            *(call.site for call, _ in observations.op_calls),
            *(region.site for region in observations.regions),
            *(use.site for use in observations.optimizers),
            *(backward.site for backward in observations.backward_passes),
        ]
        files = sorted({site.path for site in sites if site is not None})
        report.findings = join(static_findings(files) if static else (), observations)
