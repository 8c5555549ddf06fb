"""Helpers for the runtime verifier's tests: the scripts it runs, and a fingerprint of torch."""

from __future__ import annotations

import json
import multiprocessing.process
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.distributed_c10d
import torch.utils.data._utils.pin_memory
from click.testing import CliRunner, Result

SCRIPTS = Path(__file__).parent / "scripts"


def script(name: str) -> str:
    return str(SCRIPTS / name)


def marked_line(name: str, marker: str) -> int:
    """The line of `name` that ends with the comment `# marker`."""
    lines = (SCRIPTS / name).read_text().splitlines()
    return next(number for number, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


def verify(*args: str) -> Result:
    """`mplint verify ARGS` in this process, so the test can look at torch afterwards."""
    from mplint.runtime.command import verify as command

    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def verify_json(*args: str) -> tuple[int, list[dict[str, Any]]]:
    """The exit status and the findings of `mplint verify --format json ARGS`."""
    exit_code, document = verify_document(*args)
    return exit_code, document["findings"]


def verify_document(*args: str) -> tuple[int, dict[str, Any]]:
    """The exit status and the whole JSON object (run metadata and findings)."""
    result = verify("--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def torch_fingerprint() -> dict[str, Any]:
    """Everything a run patches, registers or switches, as comparable values."""
    from torch.optim import optimizer

    autocast = torch.amp.autocast_mode.autocast
    return {
        "kernels": {
            op: torch._C._dispatch_dump(op)
            for op in ("aten::mm", "aten::log_softmax.int", "aten::cross_entropy_loss", "aten::binary_cross_entropy")
        },
        "autocast_cpu_registrations": sorted(torch._C._dispatch_get_registrations_for_dispatch_key("AutocastCPU")),
        "methods": {
            name: vars(owner).get(attribute)
            for name, owner, attribute in (
                ("autocast.__init__", autocast, "__init__"),
                ("autocast.__enter__", autocast, "__enter__"),
                ("autocast.__exit__", autocast, "__exit__"),
                ("GradScaler.__init__", torch.amp.GradScaler, "__init__"),
                ("GradScaler.scale", torch.amp.GradScaler, "scale"),
                ("Optimizer.add_param_group", torch.optim.Optimizer, "add_param_group"),
                ("autograd.backward", torch.autograd, "backward"),
                ("cuda.is_available", torch.cuda, "is_available"),
                ("cuda.synchronize", torch.cuda, "synchronize"),
                ("cuda.set_device", torch.cuda, "set_device"),
                ("cuda.Event", torch.cuda, "Event"),
                ("cuda._lazy_init", torch.cuda, "_lazy_init"),
                ("cuda.random._lazy_init", torch.cuda.random, "_lazy_init"),
                ("accelerator.is_available", torch.accelerator, "is_available"),
                ("accelerator.current_accelerator", torch.accelerator, "current_accelerator"),
                ("Generator", torch, "Generator"),
                ("compile", torch, "compile"),
                ("Module.compile", torch.nn.Module, "compile"),
                ("pin_memory", torch.utils.data._utils.pin_memory, "pin_memory"),
                ("init_process_group", torch.distributed, "init_process_group"),
                ("_new_process_group_helper", torch.distributed.distributed_c10d, "_new_process_group_helper"),
                ("default_restore_location", torch.serialization, "default_restore_location"),
                ("device", torch, "device"),
                ("cuda.device", torch.cuda, "device"),
                ("cuda.manual_seed", torch.cuda, "manual_seed"),
                ("cuda.default_generators", torch.cuda, "default_generators"),
                ("cuda.random.current_device", torch.cuda.random, "current_device"),
                ("cuda.random.manual_seed", torch.cuda.random, "manual_seed"),
                ("warnings._showwarnmsg", warnings, "_showwarnmsg"),
                ("DDP.__init__", torch.nn.parallel.DistributedDataParallel, "__init__"),
                ("BaseProcess.start", multiprocessing.process.BaseProcess, "start"),
            )
        },
        "global_optimizer_hooks": (len(optimizer._global_optimizer_pre_hooks), len(optimizer._global_optimizer_post_hooks)),
        "mode_stacks": (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()),
        "autocast_state": [
            (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)) for device in ("cpu", "cuda")
        ]
        + [torch.is_autocast_cache_enabled()],
        "grad_enabled": torch.is_grad_enabled(),
        "sigalrm": signal.getsignal(signal.SIGALRM),
        "argv": list(sys.argv),
        "path": list(sys.path),
    }
