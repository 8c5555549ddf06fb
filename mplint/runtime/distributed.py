"""Under torchrun every rank records; rank 0 gathers the observations and prints one report.

The ranks meet in torchrun's own TCPStore (MASTER_ADDR:MASTER_PORT), not in the script's
process group, which the script may never have created or may already have destroyed.
"""

from __future__ import annotations

import os
import pickle
from datetime import timedelta

from mplint.errors import MplintError
from mplint.runtime.observations import Observations, merge

GATHER_TIMEOUT = timedelta(minutes=5)


def rank_and_world_size() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def gather(mine: Observations) -> Observations | None:
    """All ranks' observations merged on rank 0; None on the other ranks."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return mine
    from torch.distributed import TCPStore

    try:
        store = TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=GATHER_TIMEOUT
        )
    except (KeyError, ValueError, RuntimeError) as error:
        raise MplintError(f"cannot reach the torchrun store to merge the ranks' reports: {error}") from None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "run")
    prefix = f"mplint/verify/{run_id}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    # The ignore: torch's stub says `value: str`; the binding takes bytes (a std::string) too.
    store.set(f"{prefix}/{rank}", pickle.dumps(mine))  # type: ignore[arg-type]
    if rank != 0:
        return None
    try:
        # The store belongs to this job: unpickling what its own ranks wrote is safe.
        parts = [pickle.loads(store.get(f"{prefix}/{other}")) for other in range(world_size)]
    except RuntimeError as error:
        raise MplintError(f"not every rank reported within {GATHER_TIMEOUT}: {error}") from None
    return merge(parts)
