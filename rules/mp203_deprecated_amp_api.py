from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from mplint.findings import Applicability, Severity
from mplint.names import Binding, ImportTable, import_table
from mplint.rule import Autofix, Replacement, Rule
from mplint.tree import dotted_text


class Form(enum.Enum):
    """How the modern API takes the device, which decides how a call is rewritten."""

    DEVICE_FIRST = "device first"  # torch.amp.autocast("cuda", ...), torch.amp.GradScaler("cuda", ...)
    DECORATOR = "decorator"  # torch.amp.custom_fwd(fwd, *, device_type="cuda", ...)


@dataclass(frozen=True)
class Modern:
    """What a deprecated entry point becomes: `torch.amp.<leaf>` on `device`."""

    leaf: str
    device: str
    form: Form
    # The old API's positional parameters, turned into keywords so their meaning survives.
    old_positional: tuple[str, ...]


_AUTOCAST_PARAMS = ("enabled", "dtype", "cache_enabled")
_SCALER_PARAMS = ("init_scale", "growth_factor", "backoff_factor", "growth_interval", "enabled")


def _entry_points() -> dict[str, Modern]:
    table: dict[str, Modern] = {}
    for device, leaf, submodule, form, params in (
        ("cuda", "autocast", "autocast_mode", Form.DEVICE_FIRST, _AUTOCAST_PARAMS),
        ("cpu", "autocast", "autocast_mode", Form.DEVICE_FIRST, _AUTOCAST_PARAMS),
        ("cuda", "GradScaler", "grad_scaler", Form.DEVICE_FIRST, _SCALER_PARAMS),
        ("cpu", "GradScaler", "grad_scaler", Form.DEVICE_FIRST, _SCALER_PARAMS),
        ("cuda", "custom_fwd", "autocast_mode", Form.DECORATOR, ()),
        ("cuda", "custom_bwd", "autocast_mode", Form.DECORATOR, ()),
    ):
        modern = Modern(leaf, device, form, params)
        table[f"torch.{device}.amp.{leaf}"] = modern
        table[f"torch.{device}.amp.{submodule}.{leaf}"] = modern
    return table


DEPRECATED = _entry_points()
# Deprecated modules an alias can stand for, and the module their entry points moved to.
DEPRECATED_MODULES = {
    **{f"torch.{device}.amp": "torch.amp" for device in ("cuda", "cpu")},
    **{f"torch.{device}.amp.{sub}": "torch.amp" for device in ("cuda", "cpu") for sub in ("autocast_mode", "grad_scaler")},
}
_NO_SPACE = cst.SimpleWhitespace("")
_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


class DeprecatedAmpApi(Rule):
    """A deprecated device-specific AMP entry point (`torch.cuda.amp.*`, `torch.cpu.amp.*`).

    ## What it does
    Finds calls of `torch.cuda.amp.autocast`, `torch.cpu.amp.autocast`, `torch.cuda.amp.GradScaler`,
    `torch.cpu.amp.GradScaler`, and the decorators `torch.cuda.amp.custom_fwd`/`custom_bwd`, spelled
    out (`torch.cuda.amp.autocast()`), through an alias module (`from torch.cuda import amp`), or
    imported by name (`from torch.cuda.amp import autocast, GradScaler`, reported at the import).
    The autofix moves them to `torch.amp` with the device made explicit:

    | deprecated                             | replacement                                   |
    |----------------------------------------|-----------------------------------------------|
    | `torch.cuda.amp.autocast(...)`         | `torch.amp.autocast("cuda", ...)`             |
    | `torch.cpu.amp.autocast(...)`          | `torch.amp.autocast("cpu", ...)`              |
    | `torch.cuda.amp.GradScaler(...)`       | `torch.amp.GradScaler("cuda", ...)`           |
    | `@torch.cuda.amp.custom_fwd`           | `@torch.amp.custom_fwd(device_type="cuda")`   |
    | `@torch.cuda.amp.custom_bwd`           | `@torch.amp.custom_bwd(device_type="cuda")`   |
    | `from torch.cuda.amp import autocast`  | `from torch.amp import autocast` + every call |

    The old and new signatures order their parameters differently (`torch.cuda.amp.autocast(enabled,
    dtype, cache_enabled)` against `torch.amp.autocast(device_type, dtype, enabled, cache_enabled)`),
    so the fix turns positional arguments into keywords: `autocast(args.amp)` becomes
    `autocast("cuda", enabled=args.amp)`, not `autocast("cuda", args.amp)` (which would pass the
    flag as the dtype). `as` aliases are kept. An import is only rewritten when every use of the
    imported name in the file is a call or decorator the fix can rewrite too; otherwise (the name
    is stored in a variable, passed to `functools.partial`, called with `*args`) the finding comes
    without a fix.

    ## Why is this bad
    Since torch 2.4 every one of these emits a `FutureWarning` ("`torch.cuda.amp.autocast(args...)`
    is deprecated. Please use `torch.amp.autocast('cuda', args...)` instead.") on each call: once
    per training step for an autocast region, flooding logs. They are thin shims over `torch.amp`
    kept for compatibility and slated for removal; the device-specific spelling also hides the
    device from code that must run on CPU, XPU or MPS.

    ## Example
    ```python
    from torch.cuda.amp import GradScaler, autocast

    scaler = GradScaler()
    with autocast(args.amp):
        loss = model(x).loss
    ```

    ## Fix
    ```python
    from torch.amp import GradScaler, autocast

    scaler = GradScaler("cuda")
    with autocast("cuda", enabled=args.amp):
        loss = model(x).loss
    ```
    `torch.amp.GradScaler` and `torch.amp.custom_fwd(device_type=...)` need torch 2.4 or newer
    (the release that deprecated the old names): code that must still run on older torch should keep
    the old API and silence the warning instead.
    """

    CODE = "MP203"
    NAME = "deprecated-amp-api"
    SEVERITY = Severity.WARNING
    FIX = Applicability.SAFE
    MESSAGE = "`{old}` is deprecated since torch 2.4 (a FutureWarning on every call): use `{new}`"
    IMPORT_MESSAGE = "`{old}` imports deprecated AMP entry points (torch 2.4+ warns on every call): import them from `torch.amp` and pass the device"
    TRIGGERS = frozenset({"cuda.amp", "cpu.amp", "cuda import amp", "cpu import amp"})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
with torch.amp.autocast("cuda", dtype=torch.float16):
    loss = model(x).mean()
""",
        """
from torch.amp import autocast, custom_fwd
with autocast("cpu"):
    y = model(x)
""",
    )
    INVALID = (
        """
import torch
scaler = torch.cuda.amp.GradScaler()
""",
        """
from torch.cuda.amp import autocast
with autocast():
    loss = model(x).mean()
""",
    )

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self.names: Optional[ImportTable] = None
        self.calls: dict[cst.CSTNode, cst.Call] = {}  # func expression -> its call
        self.decorated: set[cst.CSTNode] = set()  # bare decorator expressions
        self.owners: dict[cst.CSTNode, cst.Attribute] = {}  # `amp` -> `amp.autocast`
        self.uses: dict[str, list[cst.Name]] = {}  # every loaded Name, by identifier
        self.not_uses: set[cst.Name] = set()  # attribute names, keywords, names inside imports
        self.import_depth = 0

    def visit_Module(self, node: cst.Module) -> None:
        self.names = import_table(node)

    # Collect the shapes every reference can take; decide once the whole file is seen.
    def visit_Call(self, node: cst.Call) -> None:
        self.calls[node.func] = node

    def visit_Decorator(self, node: cst.Decorator) -> None:
        self.decorated.add(node.decorator)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.owners[node.value] = node
        self.not_uses.add(node.attr)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.not_uses.add(node.keyword)

    def visit_Import(self, node: cst.Import) -> None:
        self.import_depth += 1

    def leave_Import(self, original_node: cst.Import) -> None:
        self.import_depth -= 1

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.import_depth += 1

    def leave_ImportFrom(self, original_node: cst.ImportFrom) -> None:
        self.import_depth -= 1

    def visit_Name(self, node: cst.Name) -> None:
        if self.import_depth:
            self.not_uses.add(node)
        self.uses.setdefault(node.value, []).append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        assert self.names is not None
        handled_bindings = self._report_imports(self.names)
        self._report_spelled_out(self.names, handled_bindings)

    # ------------------------------------------------------------------------------ imports
    def _report_imports(self, names: ImportTable) -> set[str]:
        """One finding per import statement that binds deprecated names; returns the locals it covers."""
        by_statement: dict[cst.CSTNode, list[Binding]] = {}
        for binding in names.bindings:
            deprecated = binding.target in DEPRECATED or binding.target in DEPRECATED_MODULES
            if deprecated and names.target_of(binding.local) == binding.target:
                by_statement.setdefault(binding.statement, []).append(binding)
        covered: set[str] = set()
        for statement, bindings in by_statement.items():
            rewrites = [self._use_rewrites(binding) for binding in bindings]
            if not any(binding.target in DEPRECATED or rewrite for binding, rewrite in zip(bindings, rewrites)):
                continue  # an alias of torch.cuda.amp never used for a deprecated entry point
            covered.update(binding.local for binding in bindings)
            fix = None
            new_statement = _modern_import(statement, bindings)
            if new_statement is not None and all(rewrite is not None for rewrite in rewrites):
                replacements = [Replacement(statement, new_statement)]
                for rewrite in rewrites:
                    replacements.extend(rewrite or ())
                fix = Autofix("import from torch.amp and pass the device", tuple(replacements), Applicability.SAFE)
            self.report(statement, self.IMPORT_MESSAGE.format(old=_spelled(statement)), fix=fix)
        return covered

    def _use_rewrites(self, binding: Binding) -> Optional[list[Replacement]]:
        """Rewrites of every use of an imported name, or None when one of them cannot be rewritten."""
        replacements: list[Replacement] = []
        for name in self.uses.get(binding.local, ()):
            if name in self.not_uses:
                continue
            if binding.target in DEPRECATED:
                reference: cst.BaseExpression = name
                modern = DEPRECATED[binding.target]
            else:
                owner = self.owners.get(name)
                leaf = f"{binding.target}.{owner.attr.value}" if owner is not None else ""
                if owner is None or leaf not in DEPRECATED:
                    return None
                reference, modern = owner, DEPRECATED[leaf]
            replacement = self._modern_reference(reference, reference, modern)
            if replacement is None:
                return None
            replacements.append(replacement)
        return replacements

    # ------------------------------------------------------------------------- spelled out
    def _report_spelled_out(self, names: ImportTable, covered: set[str]) -> None:
        """`torch.cuda.amp.autocast(...)` and `@torch.cuda.amp.custom_fwd`, and calls through
        variables the precision model resolved (`amp_autocast = torch.cuda.amp.autocast`)."""
        for func, call in self.calls.items():
            target = names.resolve(func)
            if target in DEPRECATED:
                if isinstance(func, cst.Attribute) and _head(func) not in covered:
                    self._report_reference(func, call, DEPRECATED[target], names)
            else:  # through a variable or another module of the run: no fix, the binding is elsewhere
                for fact in self.precision.calls(call):
                    if fact.function in DEPRECATED:
                        self.report(call, self._message(fact.function, DEPRECATED[fact.function]))
                        break
        for decorator in self.decorated:
            target = names.resolve(decorator)
            if target in DEPRECATED and isinstance(decorator, cst.Attribute) and _head(decorator) not in covered:
                self._report_reference(decorator, decorator, DEPRECATED[target], names)

    def _report_reference(self, func: cst.Attribute, node: cst.CSTNode, modern: Modern, names: ImportTable) -> None:
        torch = _torch_head(func, names)
        fix = None
        if torch is not None:
            new_func = cst.Attribute(value=cst.Attribute(value=torch, attr=cst.Name("amp")), attr=cst.Name(modern.leaf))
            replacement = self._modern_reference(func, new_func, modern)
            if replacement is not None:
                fix = Autofix(f"use torch.amp.{modern.leaf} with the device", (replacement,), Applicability.SAFE)
        old = self.context.parsed.module.code_for_node(func)
        self.report(node, self._message(old, modern), fix=fix)

    def _message(self, old: str, modern: Modern) -> str:
        if modern.form is Form.DECORATOR:
            new = f'torch.amp.{modern.leaf}(device_type="{modern.device}")'
        else:
            new = f'torch.amp.{modern.leaf}("{modern.device}", ...)'
        return self.MESSAGE.format(old=old, new=new)

    # ----------------------------------------------------------------------------- rewrites
    def _modern_reference(
        self, reference: cst.BaseExpression, new_func: cst.BaseExpression, modern: Modern
    ) -> Optional[Replacement]:
        """The rewrite of one use: its call gets the device (and keywords), a bare decorator becomes a call."""
        call = self.calls.get(reference)
        if call is not None:
            arguments = _modern_arguments(call, modern)
            if arguments is None:
                return None
            return Replacement(call, call.with_changes(func=new_func, args=arguments))
        if reference in self.decorated and modern.form is Form.DECORATOR:
            return Replacement(reference, cst.Call(func=new_func, args=(_device_keyword(modern.device),)))
        return None


def _modern_arguments(call: cst.Call, modern: Modern) -> Optional[list[cst.Arg]]:
    """The old call's arguments in the new API's terms; None when `*args` hides what they mean."""
    args = call.args
    if any(arg.star == "*" for arg in args):
        return None
    positional = [arg for arg in args if arg.keyword is None and not arg.star]
    rest = [arg for arg in args if arg.keyword is not None or arg.star]
    if modern.form is Form.DECORATOR:
        if any(arg.keyword is not None and arg.keyword.value == "device_type" for arg in rest):
            return None
        return _with_commas([*positional, _device_keyword(modern.device), *rest])
    if len(positional) > len(modern.old_positional):
        return None
    named = [
        arg.with_changes(keyword=cst.Name(name), equal=cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE))
        for arg, name in zip(positional, modern.old_positional)
    ]
    device = cst.Arg(cst.SimpleString(f'"{modern.device}"'))
    if args and isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        device = device.with_changes(comma=cst.Comma(whitespace_after=call.whitespace_before_args))  # one per line
    return _with_commas([device, *named, *rest])


def _device_keyword(device: str) -> cst.Arg:
    return cst.Arg(
        cst.SimpleString(f'"{device}"'),
        keyword=cst.Name("device_type"),
        equal=cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE),
    )


def _with_commas(args: list[cst.Arg]) -> list[cst.Arg]:
    """Every argument but the last is followed by a comma (existing commas, and their comments, kept)."""
    return [
        arg.with_changes(comma=_COMMA) if index < len(args) - 1 and isinstance(arg.comma, cst.MaybeSentinel) else arg
        for index, arg in enumerate(args)
    ]


def _modern_import(statement: Union[cst.Import, cst.ImportFrom], bindings: list[Binding]) -> Optional[cst.CSTNode]:
    """The import rewritten to `torch.amp`, when every name it binds has moved there."""
    if isinstance(statement, cst.ImportFrom):
        names = statement.names
        if isinstance(names, cst.ImportStar) or len(bindings) != len(names):
            return None
        if all(binding.target in DEPRECATED for binding in bindings):
            return statement.with_changes(module=cst.parse_expression("torch.amp"))
        if len(bindings) == 1 and DEPRECATED_MODULES.get(bindings[0].target) == "torch.amp" and bindings[0].target.count(".") == 2:
            return statement.with_changes(module=cst.Name("torch"))  # from torch.cuda import amp
        return None
    if len(statement.names) != 1 or bindings[0].target not in DEPRECATED_MODULES:
        return None
    alias = statement.names[0]
    return statement.with_changes(names=[alias.with_changes(name=cst.parse_expression("torch.amp"))])


def _torch_head(func: cst.Attribute, names: ImportTable) -> Optional[cst.BaseExpression]:
    """The part of `th.cuda.amp.autocast` that names torch itself (`th`), if the chain goes through it."""
    node: cst.BaseExpression = func.value
    while isinstance(node, cst.Attribute):
        if names.resolve(node) == "torch":
            return node
        node = node.value
    return node if names.resolve(node) == "torch" else None


def _head(node: cst.BaseExpression) -> str:
    while isinstance(node, cst.Attribute):
        node = node.value
    return node.value if isinstance(node, cst.Name) else ""


def _spelled(statement: Union[cst.Import, cst.ImportFrom]) -> str:
    """`from torch.cuda.amp import autocast, GradScaler` on one line, however it is laid out."""
    aliases = [] if isinstance(statement.names, cst.ImportStar) else statement.names
    names = ", ".join(dotted_text(alias.name) for alias in aliases)
    if isinstance(statement, cst.Import):
        return f"import {names}"
    module = "." * len(statement.relative) + (dotted_text(statement.module) if statement.module is not None else "")
    return f"from {module} import {names}"
