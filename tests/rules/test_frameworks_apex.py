"""NVIDIA apex's amp in the precision model (NVIDIA/apex 0466713, apex/amp/frontend.py): `amp.initialize`
casts the models in place to its opt level's dtype (O2/O3 fp16, O2 keeping batchnorm fp32, O0 fp32,
O1 leaving the weights alone) and gives the optimizers fp32 master weights at O2 (or with
`master_weights=True`), none at O3. Shaped after NVIDIA's apex ImageNet example (main_amp.py:
`model, optimizer = amp.initialize(model, optimizer, opt_level=args.opt_level, ...)`) and the
older detection/segmentation repositories that call it with a literal level."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

STEP = """
    import argparse
    import torch
    import torch.nn.functional as F
    from apex import amp

    parser = argparse.ArgumentParser()
    parser.add_argument("--opt-level", type=str, default="O2")
    args = parser.parse_args()

    model = Net().cuda(){model_cast}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9){optimizer_expect}
    model, optimizer = amp.initialize(model, optimizer, {options})
    for images, target in loader:
        log_probs = F.log_softmax(model(images), dim=-1){logits_expect}
        loss = F.nll_loss(log_probs, target)
        optimizer.zero_grad()
        with amp.scale_loss(loss, optimizer) as scaled_loss:
            scaled_loss.backward()
        optimizer.step()
"""


def step(options: str, *, half_model: bool = False, expect: str = "") -> str:
    """The loop with `amp.initialize(model, optimizer, <options>)`; `expect` marks where findings go:
    "optimizer" (built over half weights, or over weights `initialize` casts in place after it), "logits"."""
    marker = "  # expect: {}"
    return STEP.format(
        model_cast=".half()" if half_model else "",
        options=options,
        optimizer_expect=marker.format("MP003") if "optimizer" in expect else "",
        logits_expect=marker.format("MP001") if "logits" in expect else "",
    )


CASES = [
    bug("o3-casts-the-model-after-its-optimizer-was-built", step('opt_level="O3"', expect="optimizer logits")),
    bug(
        "o3-over-a-half-model-has-no-master-weights", step('opt_level="O3"', half_model=True, expect="optimizer logits")
    ),
    bug("master-weights-off-at-o2", step('opt_level="O2", master_weights=False', expect="optimizer")),
    bug(
        "o3-without-keeping-batchnorm-as-a-string",
        step('opt_level="O3", keep_batchnorm_fp32="False"', expect="optimizer logits"),
    ),
    ok("o2-steps-fp32-master-weights", step('opt_level="O2"')),
    ok("o2-over-a-half-model-steps-fp32-master-weights", step('opt_level="O2"', half_model=True)),
    # Master weights keep the updates, not the forward: the logits are still float16.
    bug("o3-with-master-weights-computes-in-fp16", step('opt_level="O3", master_weights=True', expect="logits")),
    ok("o1-leaves-the-weights-fp32", step('opt_level="O1"')),
    # O1 (the default level) neither casts nor gives master weights: a .half() model stays as it was.
    bug("o1-by-default-leaves-a-half-model-half", step("loss_scale=128.0", half_model=True, expect="optimizer logits")),
    ok("o0-is-fp32", step('opt_level="O0"')),
    ok("disabled", step('opt_level="O3", enabled=False')),
    ok("a-level-from-the-command-line", step("opt_level=args.opt_level")),
    # A level from a config object the analysis does not read: unknown, taken to keep master weights.
    ok("a-level-from-a-config-object", step("opt_level=cfg.amp.opt_level")),
]


@pytest.mark.parametrize("source", CASES)
def test_amp_initialize(source: str) -> None:
    check(source, "MP001")
    check(source, "MP003")


def test_models_and_optimizers_given_as_lists() -> None:
    source = """
        import torch
        import apex

        generator, discriminator = Generator().cuda(), Discriminator().cuda()
        g_opt = torch.optim.Adam(generator.parameters())  # expect: MP003
        d_opt = torch.optim.Adam(discriminator.parameters())  # expect: MP003
        [generator, discriminator], [g_opt, d_opt] = apex.amp.initialize(
            [generator, discriminator], [g_opt, d_opt], opt_level="O3"
        )
        for real in loader:
            d_opt.zero_grad()
            g_opt.zero_grad()
            d_opt.step()
            g_opt.step()
    """
    check(source, "MP003")
    check(source.replace('opt_level="O3"', 'opt_level="O2"').replace("  # expect: MP003", ""), "MP003")


# Optimizer wrappers that step fp32 master copies (apex's fp16_utils/optimizers FP16_Optimizer,
# DeepSpeed's and Megatron's), imported or vendored in the repository (jukebox ships apex's tests):
# the optimizer they wrap updates no half weight. Unwrapped, it does.
FP16_OPTIMIZER = """
    import torch
    import apex
    {imports}

    model = torch.nn.Linear(1024, 16).cuda().half()
    optimizer = torch.optim.Adam(model.parameters()){expect}
    {wrapped}
    for x in loader:
        optimizer.zero_grad()
        optimizer.backward(model(x).float().sum())
        optimizer.step()
"""


@pytest.mark.parametrize(
    ("imports", "wrapped", "expect"),
    [
        ("", "optimizer = apex.fp16_utils.FP16_Optimizer(optimizer, verbose=False)", ""),
        ("from apex.optimizers import FP16_Optimizer", "optimizer = FP16_Optimizer(optimizer)", ""),
        (
            "from deepspeed.runtime.fp16.fused_optimizer import FP16_Optimizer",
            "optimizer = FP16_Optimizer(init_optimizer=optimizer, dynamic_loss_scale=True)",
            "",
        ),
        ("", "", "  # expect: MP003"),
    ],
    ids=["apex-fp16-utils", "apex-optimizers", "deepspeed-keyword", "unwrapped"],
)
def test_an_fp16_optimizer_wrapper_keeps_master_weights(imports: str, wrapped: str, expect: str) -> None:
    check(FP16_OPTIMIZER.format(imports=imports, wrapped=wrapped, expect=expect), "MP003")


# apex's loss scaling (NVIDIA/apex fab319f, apex/amp/handle.py): `amp.scale_loss` yields the scaled
# loss, and leaving its block (unless `delay_unscale=True`) unscales the gradients and, on an
# overflow, patches `optimizer.step` to skip once: `optimizer.step()` after the block is right, the
# loss was scaled all the same (no MP002), and a clip inside the block sees scaled gradients.
LOSS_SCALING_CASES = [
    # timm/utils/cuda.py: both of timm's loss scalers, the apex one stepping the optimizer itself.
    ok(
        "timm-apex-scaler-steps-after-the-block",
        """
        import torch

        try:
            from apex import amp
            has_apex = True
        except ImportError:
            amp = None
            has_apex = False


        class ApexScaler:
            state_dict_key = "amp"

            def __call__(self, loss, optimizer, clip_grad=None, parameters=None, need_update=True):
                with amp.scale_loss(loss, optimizer) as scaled_loss:
                    scaled_loss.backward()
                if need_update:
                    if clip_grad is not None:
                        torch.nn.utils.clip_grad_norm_(amp.master_params(optimizer), clip_grad)
                    optimizer.step()


        class NativeScaler:
            state_dict_key = "amp_scaler"

            def __init__(self, device="cuda"):
                self._scaler = torch.amp.GradScaler(device=device)

            def __call__(self, loss, optimizer, clip_grad=None, parameters=None, need_update=True):
                self._scaler.scale(loss).backward()
                if need_update:
                    if clip_grad is not None:
                        self._scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
                    self._scaler.step(optimizer)
                    self._scaler.update()
        """,
    ),
    # A training loop that scales with apex or with a GradScaler, accumulating gradients: apex
    # unscales at the end of every micro-batch's block (and accumulates), which is no repeated
    # `unscale_` (MP105); the fp16 autocast loss is scaled on both paths (MP002).
    ok(
        "apex-or-grad-scaler-with-accumulation",
        """
        import torch
        from apex import amp

        scaler = torch.amp.GradScaler("cuda", enabled=not args.apex)
        if args.apex:
            model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
        for step, (images, target) in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(images), target) / args.accum_steps
            if args.apex:
                with amp.scale_loss(loss, optimizer) as scaled_loss:
                    scaled_loss.backward()
            else:
                scaler.scale(loss).backward()
            if (step + 1) % args.accum_steps == 0:
                if args.apex:
                    torch.nn.utils.clip_grad_norm_(amp.master_params(optimizer), 1.0)
                    optimizer.step()
                else:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                optimizer.zero_grad()
        """,
    ),
    # Inside the block the gradients are still multiplied by the loss scale.
    bug(
        "clip-inside-the-scale-loss-block",
        """
        import torch
        from apex import amp

        model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
        for images, target in loader:
            loss = criterion(model(images), target)
            optimizer.zero_grad()
            with amp.scale_loss(loss, optimizer) as scaled_loss:
                scaled_loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: MP101
            optimizer.step()
        """,
    ),
    # `delay_unscale=True` leaves the gradients scaled for a later block's exit: "optimizer.step()
    # cannot be called yet after context manager exit" (apex's docstring).
    bug(
        "step-after-a-delayed-unscale",
        """
        import torch
        from apex import amp

        model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
        for images, target in loader:
            loss = criterion(model(images), target)
            with amp.scale_loss(loss, optimizer, delay_unscale=True) as scaled_loss:
                scaled_loss.backward()
            optimizer.step()  # expect: MP104
            optimizer.zero_grad()
        """,
    ),
    # Delayed on all micro-batches but the last (a condition the walk cannot tie to the step's): quiet.
    ok(
        "unscale-delayed-until-the-last-micro-batch",
        """
        import torch
        from apex import amp

        model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
        for step, (images, target) in enumerate(loader):
            loss = criterion(model(images), target) / accum_steps
            last = (step + 1) % accum_steps == 0
            with amp.scale_loss(loss, optimizer, delay_unscale=not last) as scaled_loss:
                scaled_loss.backward()
            if last:
                optimizer.step()
                optimizer.zero_grad()
        """,
    ),
]


@pytest.mark.parametrize("source", LOSS_SCALING_CASES)
@pytest.mark.parametrize("code", ["MP002", "MP101", "MP104", "MP105"])
def test_amp_scale_loss(source: str, code: str) -> None:
    check(source, code)
