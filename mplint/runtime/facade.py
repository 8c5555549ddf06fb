"""What `torch.cuda`, `torch.accelerator` and friends answer while CUDA is emulated on a CPU.

Scripts take their CUDA path only if the calls along it work: device management
(`set_device`, `current_device`, `torch.cuda.device(i)`), a documented fake device (an A100:
capability 8.0, so bf16 is supported), events that time with the host clock, streams that are
no-ops, CUDA generators and RNG state (served by the CPU's), memory statistics (all zero),
`pin_memory` (a no-op), and `torch.accelerator` reporting the emulated CUDA device. A call that
needs a real GPU beyond these raises `EmulatedCudaError`, which names the call and says why.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from mplint.runtime.patching import patch

if TYPE_CHECKING:
    from mplint.runtime.observations import RunLog

DEVICE_NAME = "NVIDIA A100-SXM4-80GB (emulated by mplint verify)"
CAPABILITY = (8, 0)
TOTAL_MEMORY = 80 * 2**30
HINT = "run with --device cpu to run it as plain python would here, or verify on a GPU"


class EmulatedCudaError(RuntimeError):
    """A CUDA call that emulation cannot serve: the script's error, with the cause named."""


def unsupported(call: str) -> NoReturn:
    raise EmulatedCudaError(
        f"{call} needs a real GPU: mplint verify is emulating CUDA on this machine (no GPU) and cannot emulate it; "
        f"{HINT}"
    )


@dataclass(frozen=True)
class DeviceProperties:
    """`torch.cuda.get_device_properties()` of the emulated device: an A100-SXM4-80GB."""

    name: str = DEVICE_NAME
    major: int = CAPABILITY[0]
    minor: int = CAPABILITY[1]
    total_memory: int = TOTAL_MEMORY
    multi_processor_count: int = 108
    is_integrated: bool = False
    is_multi_gpu_board: bool = False
    max_threads_per_multi_processor: int = 2048
    regs_per_multiprocessor: int = 65536
    warp_size: int = 32
    L2_cache_size: int = 40 * 2**20
    gcnArchName: str = ""
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"


class Event:
    """`torch.cuda.Event`: records the host clock; `elapsed_time` in milliseconds, as CUDA's."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
        self.enable_timing = enable_timing
        self._recorded: float | None = None

    def record(self, stream: Any = None) -> None:
        self._recorded = time.perf_counter()

    def wait(self, stream: Any = None) -> None:
        pass

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end_event: Event) -> float:
        if not (self.enable_timing and end_event.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self._recorded is None or end_event._recorded is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return (end_event._recorded - self._recorded) * 1000.0


class Stream:
    """`torch.cuda.Stream`: work on the emulated device is synchronous, so every wait is done."""

    def __init__(self, device: Any = None, priority: int = 0, **kwargs: Any) -> None:
        import torch

        self.device = torch.device("cuda", 0)
        self.priority = priority
        self.cuda_stream = 0

    def wait_stream(self, stream: Stream) -> None:
        pass

    def wait_event(self, event: Event) -> None:
        pass

    def record_event(self, event: Event | None = None) -> Event:
        event = event or Event()
        event.record(self)
        return event

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass

    def is_capturing(self) -> bool:
        return False

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class DeviceState:
    """The emulated devices: as many as torchrun's local ranks (so `set_device(local_rank)` works)."""

    def __init__(self, log: RunLog) -> None:
        self.count = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        self.current = 0
        self._log = log
        self._default_stream: Stream | None = None

    def index(self, device: Any, call: str) -> int:
        import torch

        if device is None:
            return self.current
        if isinstance(device, str):
            device = torch.device(device)
        if isinstance(device, torch.device):
            if device.type != "cuda":
                raise ValueError(f"{call}: expected a cuda device, got {device}")
            index = self.current if device.index is None else device.index
        else:
            index = int(device)
        if not 0 <= index < self.count:
            raise RuntimeError(
                f"{call}({device!r}): invalid device ordinal; the emulated CUDA has {self.count} device(s) "
                "(one per torchrun local rank)"
            )
        return index

    def answer(self, call: str, value: object) -> Callable[..., Any]:
        """A per-device query: checks the device asked about, answers the same for each."""

        def query(device: Any = None) -> object:
            self.index(device, call)
            return value

        return query

    def set_device(self, device: Any) -> None:
        self.current = self.index(device, "torch.cuda.set_device")
        self._log.cuda_used = True

    def stream(self) -> Stream:
        if self._default_stream is None:
            self._default_stream = Stream()
        return self._default_stream


def _device_classes(state: DeviceState) -> tuple[type, type]:
    """`torch.cuda.device(i)` and `device_of(obj)`: context managers that select the device for the
    block; classes, as torch's are, so `isinstance(x, torch.cuda.device)` (torch.load does it) works."""

    class device:
        def __init__(self, device: Any) -> None:
            if device is None or (isinstance(device, int) and device < 0):
                self.idx = -1
            else:
                self.idx = state.index(device, "torch.cuda.device")
            self.prev_idx = -1

        def __enter__(self) -> device:
            self.prev_idx = state.current
            if self.idx >= 0:
                state.set_device(self.idx)
            return self

        def __exit__(self, *exc_info: object) -> None:
            state.current = self.prev_idx

    class device_of(device):
        def __init__(self, obj: Any) -> None:  # tensors live on the CPU here: a no-op, as for a CPU tensor
            super().__init__(None)

    device.__qualname__ = device.__name__ = "device"
    device_of.__qualname__ = device_of.__name__ = "device_of"
    return device, device_of


class _DelegatingMeta(type):
    """`isinstance`/`issubclass` against a stand-in class answer for the torch class it replaces."""

    original: type

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, cls.original)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.original)


def _generator_class() -> type:
    """`torch.Generator` that makes a CPU generator when asked for a CUDA one; `isinstance` still
    holds for every generator."""
    import torch

    original = torch._C.Generator

    class Generator(metaclass=_DelegatingMeta):
        def __new__(cls, device: Any = "cpu") -> Any:
            if isinstance(device, int) or str(device).startswith("cuda"):
                device = "cpu"
            return original(device=device)

    Generator.original = original
    Generator.__doc__ = original.__doc__
    return Generator


def _device_type() -> type:
    """`torch.device` that reads a bare device index as a CUDA device, as it does where CUDA is the
    accelerator (`torch.device(0)` is `cuda:0`); `isinstance` holds for every device."""
    import torch

    original = torch.device

    class device(metaclass=_DelegatingMeta):
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if len(args) == 1 and not kwargs and _is_index(args[0]):
                return original("cuda", args[0])
            return original(*args, **kwargs)

    device.original = original
    device.__doc__ = original.__doc__
    return device


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rng_answers(state: DeviceState) -> dict[str, Any]:
    """The CUDA RNG, served by the CPU's default generator (CUDA tensors are made on the CPU here)."""
    import torch

    cpu = torch.default_generator

    # One function per name: torch._dynamo maps each torch.cuda function to a rule by identity.
    def manual_seed(seed: int) -> None:
        cpu.manual_seed(int(seed))

    def manual_seed_all(seed: int) -> None:
        cpu.manual_seed(int(seed))

    def seed() -> None:
        cpu.seed()

    def seed_all() -> None:
        cpu.seed()

    def initial_seed() -> int:
        return cpu.initial_seed()

    def set_rng_state_all(new_states: Any) -> None:
        for new_state in new_states:
            cpu.set_state(new_state)

    def get_rng_state(device: Any = "cuda") -> Any:
        state.index(device, "torch.cuda.get_rng_state")
        return cpu.get_state()

    def set_rng_state(new_state: Any, device: Any = "cuda") -> None:
        state.index(device, "torch.cuda.set_rng_state")
        cpu.set_state(new_state)

    return {
        "manual_seed": manual_seed,
        "manual_seed_all": manual_seed_all,
        "seed": seed,
        "seed_all": seed_all,
        "initial_seed": initial_seed,
        "get_rng_state": get_rng_state,
        "set_rng_state": set_rng_state,
        "get_rng_state_all": lambda: [cpu.get_state() for _ in range(state.count)],
        "set_rng_state_all": set_rng_state_all,
    }


def install(stack: contextlib.ExitStack, log: RunLog) -> None:
    """Patch torch for the length of `stack` so a CUDA script runs on the CPU."""
    import torch
    import torch.utils.data._utils.pin_memory as pin_memory_module

    state = DeviceState(log)
    cuda = torch.cuda
    zero: Callable[..., int] = lambda *args, **kwargs: 0  # noqa: E731 - memory counters
    nothing: Callable[..., None] = lambda *args, **kwargs: None  # noqa: E731
    device_class, device_of_class = _device_classes(state)
    answers: dict[str, Any] = {
        "is_available": lambda: True,
        "is_initialized": lambda: True,
        "init": nothing,
        "device_count": lambda: state.count,
        "current_device": lambda: state.current,
        "set_device": state.set_device,
        "device": device_class,
        "device_of": device_of_class,
        "get_device_name": state.answer("torch.cuda.get_device_name", DEVICE_NAME),
        "get_device_capability": state.answer("torch.cuda.get_device_capability", CAPABILITY),
        "get_device_properties": state.answer("torch.cuda.get_device_properties", DeviceProperties()),
        "get_arch_list": lambda: [f"sm_{CAPABILITY[0]}{CAPABILITY[1]}"],
        "is_bf16_supported": lambda *args, **kwargs: True,
        "synchronize": nothing,
        "Event": Event,
        "Stream": Stream,
        "stream": lambda stream=None: contextlib.nullcontext(stream),
        "current_stream": lambda device=None: state.stream(),
        "default_stream": lambda device=None: state.stream(),
        "set_stream": nothing,
        "is_current_stream_capturing": lambda: False,
        **_rng_answers(state),
        "empty_cache": nothing,
        "reset_peak_memory_stats": nothing,
        "reset_max_memory_allocated": nothing,
        "reset_max_memory_cached": nothing,
        "reset_accumulated_memory_stats": nothing,
        "memory_allocated": zero,
        "max_memory_allocated": zero,
        "memory_reserved": zero,
        "max_memory_reserved": zero,
        "memory_cached": zero,
        "max_memory_cached": zero,
        "memory_stats": lambda *args, **kwargs: {},
        "memory_summary": lambda *args, **kwargs: "(emulated CUDA: no memory statistics)",
        "mem_get_info": lambda device=None: (TOTAL_MEMORY, TOTAL_MEMORY),
        "set_per_process_memory_fraction": nothing,
    }
    submodules = [value for value in vars(cuda).values() if _is_cuda_submodule(value)]
    for name, value in answers.items():
        if hasattr(cuda, name):
            original = patch(stack, cuda, name, value)
            # torch.cuda's own modules bound some of these at import (`torch.cuda.random` imported
            # `current_device`, `device_count`...): those names answer the same.
            for module in submodules:
                if vars(module).get(name) is original:
                    patch(stack, module, name, value)
    # `torch.cuda.default_generators[i]`: the generator that serves the emulated device i.
    patch(stack, cuda, "default_generators", (torch.default_generator,) * state.count)

    def lazy_init() -> NoReturn:
        caller = sys._getframe(1).f_code.co_name
        unsupported(f"torch.cuda.{caller}()")

    # `_lazy_init` is where every CUDA call that needs the driver begins; each module of
    # torch.cuda imported its own reference to it.
    for module in [cuda, *submodules]:
        if callable(getattr(module, "_lazy_init", None)):
            patch(stack, module, "_lazy_init", lazy_init)

    accelerator = torch.accelerator
    accelerator_answers: dict[str, Any] = {
        "is_available": lambda: True,
        "current_accelerator": lambda check_available=False: torch.device("cuda"),
        "device_count": lambda: state.count,
        "current_device_index": lambda: state.current,
        "current_device_idx": lambda: state.current,
        "set_device_index": state.set_device,
        "set_device_idx": state.set_device,
        "synchronize": nothing,
        "current_stream": lambda device=None: state.stream(),
        "set_stream": nothing,
        "empty_cache": nothing,
        "memory_allocated": zero,
        "max_memory_allocated": zero,
        "memory_reserved": zero,
        "max_memory_reserved": zero,
        "reset_peak_memory_stats": nothing,
        "reset_accumulated_memory_stats": nothing,
        "memory_stats": lambda *args, **kwargs: {},
        "get_device_capability": lambda device=None: {"major": CAPABILITY[0], "minor": CAPABILITY[1]},
    }
    for name, value in accelerator_answers.items():
        if hasattr(accelerator, name):
            patch(stack, accelerator, name, value)

    _install_distributed(stack)
    _install_load(stack)
    patch(stack, torch, "Generator", _generator_class())
    patch(stack, torch, "device", _device_type())
    # DataLoader(pin_memory=True) pins each batch, in a thread of its own with more workers.
    patch(stack, pin_memory_module, "pin_memory", lambda data, device=None: data)


def _install_distributed(stack: contextlib.ExitStack) -> None:
    """NCCL needs GPUs: process groups use gloo instead; DDP over a (CPU-run) module takes no device ids."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if dist.is_available():
        import torch.distributed.distributed_c10d as c10d

        # Every process group is made here (init_process_group, new_group): patched at this source,
        # the remap holds for `from torch.distributed import init_process_group` bound before
        # mplint patched anything (a spawned worker re-imports the script before it records).
        original_helper = c10d._new_process_group_helper

        def new_process_group_helper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > 3:
                args = (*args[:3], _gloo_for_nccl(args[3]), *args[4:])
            elif "backend" in kwargs:
                kwargs["backend"] = _gloo_for_nccl(kwargs["backend"])
            if len(args) > 9:
                args = (*args[:9], None, *args[10:])
            kwargs.pop("device_id", None)  # binds the group to a CUDA device
            return original_helper(*args, **kwargs)

        patch(stack, c10d, "_new_process_group_helper", new_process_group_helper)
    original_ddp_init = DistributedDataParallel.__init__

    def ddp_init(
        self: Any, module: Any, device_ids: Any = None, output_device: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        original_ddp_init(self, module, None, None, *args, **kwargs)

    patch(stack, DistributedDataParallel, "__init__", ddp_init)


def _install_load(stack: contextlib.ExitStack) -> None:
    """`torch.load` restores CUDA storages (saved on a GPU, or `map_location="cuda"`) on the CPU,
    where the emulated device keeps its tensors. Every `map_location` but a function ends here."""
    import torch.serialization as serialization

    original = serialization.default_restore_location

    def default_restore_location(storage: Any, location: str) -> Any:
        if isinstance(location, str) and (location == "cuda" or location.startswith("cuda:")):
            location = "cpu"
        return original(storage, location)

    patch(stack, serialization, "default_restore_location", default_restore_location)


def _gloo_for_nccl(backend: Any) -> Any:
    from torch.distributed import Backend

    return Backend("gloo") if isinstance(backend, str) and "nccl" in backend.lower() else backend


def _is_cuda_submodule(value: object) -> bool:
    return type(value).__name__ == "module" and getattr(value, "__name__", "").startswith("torch.cuda.")


# What torch says when a CPU-only build is asked for CUDA (a missing `torch._C._cuda_*` binding,
# a dummy CUDA class, the lazy initialisation's assertion), or a CUDA build on a machine without a GPU
# (`torch._C._cuda_init` in `torch.cuda._lazy_init`; the CUDA runtime's own errors, as torch 2.11+cu130
# raised them for `torch.cuda.CUDAGraph()` with no driver).
_EMULATION_ERROR_SIGNS = (
    "_cuda_",
    "compiled with CUDA",
    "no NVIDIA driver",
    "No CUDA GPUs are available",
    "CUDA error: ",
    "without CUDA",
    "CUDA library",
    "dummy base class",
    "accelerator device when none is available",
    "no accelerator support is found",
    "have NCCL built in",
    "mplint verify is emulating CUDA",  # an EmulatedCudaError, as a worker's traceback text
)


def is_emulation_error(error: BaseException) -> bool:
    """Whether a script's error comes from asking the emulated CUDA for something it cannot do."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EmulatedCudaError):
            return True
        text = str(current)
        if any(sign in text for sign in _EMULATION_ERROR_SIGNS):
            return True
        current = current.__cause__ or current.__context__
    return False
