from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import libcst as cst

from mplint.findings import Applicability, Severity
from mplint.names import Binding, ImportStatement, ImportTable, import_table
from mplint.rule import Autofix, Replacement, Rule
from mplint.tree import dotted_text, statements, string_value

if TYPE_CHECKING:
    from mplint.run.engine import FileContext


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
    **{
        f"torch.{device}.amp.{sub}": "torch.amp"
        for device in ("cuda", "cpu")
        for sub in ("autocast_mode", "grad_scaler")
    },
}


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
    the old API and silence the warning instead. The fix of an import is unsafe (`--unsafe-fixes`)
    when other modules may call the names through this one (a package's `__init__.py`, a name in
    `__all__`, another file of the run importing it): their calls would need the device too.
    """

    CODE = "MP203"
    NAME = "deprecated-amp-api"
    SEVERITY = Severity.WARNING
    FIX = Applicability.SAFE
    MESSAGE = "`{old}` is deprecated since torch 2.4 (a FutureWarning on every call): use `{new}`"
    IMPORT_MESSAGE = (
        "`{old}` imports deprecated AMP entry points (torch 2.4+ warns on every call): "
        "import them from `torch.amp` and pass the device"
    )
    TRIGGERS = frozenset({"cuda.amp", "cpu.amp", "cuda import amp", "cpu import amp"})
    SYNTACTIC = True  # every reference to a deprecated name is rewritten, evaluated or not
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

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.names: ImportTable | None = None
        self.calls: dict[cst.BaseExpression, cst.Call] = {}  # func expression -> its call
        self.decorated: set[cst.BaseExpression] = set()  # decorator expressions
        self.owners: dict[cst.BaseExpression, cst.Attribute] = {}  # `amp` -> `amp.autocast`
        self.uses: dict[str, list[cst.Name]] = {}  # every Name, by identifier

    def visit_Module(self, node: cst.Module) -> None:
        self.names = import_table(node)

    # Collect the shapes every reference can take; decide once the whole file is seen.
    def visit_Call(self, node: cst.Call) -> None:
        self.calls[node.func] = node

    def visit_Decorator(self, node: cst.Decorator) -> None:
        self.decorated.add(node.decorator)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.owners[node.value] = node

    def visit_Name(self, node: cst.Name) -> None:
        self.uses.setdefault(node.value, []).append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        assert self.names is not None
        handled_bindings = self._report_imports(self.names)
        self._report_spelled_out(self.names, handled_bindings)

    # ------------------------------------------------------------------------------ imports
    def _report_imports(self, names: ImportTable) -> set[str]:
        """One finding per import statement that binds deprecated names; returns the locals it covers."""
        by_statement: dict[ImportStatement, list[Binding]] = {}
        for binding in names.bindings:
            deprecated = binding.target in DEPRECATED or binding.target in DEPRECATED_MODULES
            if deprecated and names.target_of(binding.local) == binding.target:
                by_statement.setdefault(binding.statement, []).append(binding)
        covered: set[str] = set()
        for statement, bindings in by_statement.items():
            rewrites = [self._use_rewrites(binding) for binding in bindings]
            if not any(
                binding.target in DEPRECATED or rewrite for binding, rewrite in zip(bindings, rewrites, strict=True)
            ):
                continue  # an alias of torch.cuda.amp never used for a deprecated entry point
            covered.update(binding.local for binding in bindings)
            fix = None
            new_module = self._modern_import(statement, bindings)
            complete = [rewrite for rewrite in rewrites if rewrite is not None]
            if new_module is not None and len(complete) == len(rewrites):
                replacements = [new_module, *(replacement for rewrite in complete for replacement in rewrite)]
                # Calls elsewhere of a name this file re-exports would need the device too: not safe.
                exported = self._exported([binding.local for binding in bindings])
                applicability = Applicability.UNSAFE if exported else Applicability.SAFE
                fix = Autofix("import from torch.amp and pass the device", tuple(replacements), applicability)
            self.report(statement, self.IMPORT_MESSAGE.format(old=_spelled(statement)), fix=fix)
        return covered

    def _exported(self, names: list[str]) -> bool:
        """Whether other modules may use these names from this one: a package's `__init__.py`, a
        name in `__all__`, or one another file of the run imports from here."""
        if PurePosixPath(self.context.path).name == "__init__.py":
            return True
        return any(
            name in _all_names(self.context.parsed.module) or self.context.used_elsewhere(name) for name in names
        )

    def _use_rewrites(self, binding: Binding) -> list[Replacement] | None:
        """Rewrites of every use of an imported name, or None when one of them cannot be rewritten."""
        replacements: list[Replacement] = []
        for name in self.uses.get(binding.local, ()):
            reference: cst.BaseExpression
            if binding.target in DEPRECATED:
                reference, modern = name, DEPRECATED[binding.target]
            else:
                owner = self.owners.get(name)
                leaf = f"{binding.target}.{owner.attr.value}" if owner is not None else ""
                if leaf not in DEPRECATED:
                    return None  # `amp` alone, or `amp.grad_scaler.GradScaler`
                assert owner is not None
                reference, modern = owner, DEPRECATED[leaf]
            rewrite = self._modern_reference(reference, None, modern)
            if rewrite is None:
                return None
            replacements.extend(rewrite)
        return replacements

    def _modern_import(self, statement: ImportStatement, bindings: list[Binding]) -> Replacement | None:
        """The import's module rewritten to `torch.amp` (or `torch`), when every name it binds has moved there."""
        module: str | None = None
        if isinstance(statement, cst.ImportFrom):
            assert not isinstance(statement.names, cst.ImportStar)  # a star import binds no name
            if len(bindings) != len(statement.names):
                return None  # `from torch.cuda import amp, is_available`: not every name moved
            if all(binding.target in DEPRECATED for binding in bindings):
                module = "torch.amp"
            # Not every name is an entry point, so one is a module: `torch.cuda.amp` (not
            # `torch.cuda.amp.grad_scaler`, which `torch` has no counterpart of).
            elif all(binding.target.count(".") == 2 for binding in bindings):
                module = "torch"  # from torch.cuda import amp
        elif len(statement.names) == 1 and bindings[0].target in DEPRECATED_MODULES:
            module = "torch.amp"  # import torch.cuda.amp as amp
        if module is None:
            return None
        spelled = statement.module if isinstance(statement, cst.ImportFrom) else statement.names[0].name
        return self.replace(spelled, module) if spelled is not None else None

    # ------------------------------------------------------------------------- spelled out
    def _report_spelled_out(self, names: ImportTable, covered: set[str]) -> None:
        """`torch.cuda.amp.autocast(...)` and `@torch.cuda.amp.custom_fwd`, and calls through
        variables the precision model resolved (`amp_autocast = torch.cuda.amp.autocast`)."""
        for func, call in self.calls.items():
            target = names.resolve(func)
            if target in DEPRECATED:
                if _head(func) not in covered:
                    assert isinstance(func, cst.Attribute)  # a name that stands for one is an import: covered
                    self._report_reference(func, call, DEPRECATED[target], names)
            else:  # through a variable or another module of the run: no fix, the binding is elsewhere
                for fact in self.precision.calls(call):
                    if fact.function in DEPRECATED:
                        self.report(call, self._message(fact.function, DEPRECATED[fact.function]))
                        break
        for decorator in self.decorated:
            target = names.resolve(decorator)
            if target in DEPRECATED and _head(decorator) not in covered:
                assert isinstance(decorator, cst.Attribute)  # a name that stands for one is an import: covered
                self._report_reference(decorator, decorator, DEPRECATED[target], names)

    def _report_reference(
        self, func: cst.Attribute, node: cst.BaseExpression, modern: Modern, names: ImportTable
    ) -> None:
        torch = _torch_head(func, names)
        fix = None
        if torch is not None:
            rewrite = self._modern_reference(func, f"{dotted_text(torch)}.amp.{modern.leaf}", modern)
            if rewrite is not None:
                fix = Autofix(f"use torch.amp.{modern.leaf} with the device", tuple(rewrite), Applicability.SAFE)
        self.report(node, self._message(dotted_text(func), modern), fix=fix)

    def _message(self, old: str, modern: Modern) -> str:
        if modern.form is Form.DECORATOR:
            new = f'torch.amp.{modern.leaf}(device_type="{modern.device}")'
        else:
            new = f'torch.amp.{modern.leaf}("{modern.device}", ...)'
        return self.MESSAGE.format(old=old, new=new)

    # ----------------------------------------------------------------------------- rewrites
    def _modern_reference(
        self, reference: cst.BaseExpression, new_func: str | None, modern: Modern
    ) -> list[Replacement] | None:
        """The rewrite of one use (its callee spelled `new_func`, when given): its call gets the
        device (and keywords), a bare decorator becomes a call; None when it cannot be rewritten."""
        renamed = [self.replace(reference, new_func)] if new_func is not None else []
        call = self.calls.get(reference)
        if call is not None:
            arguments = self._modern_arguments(call, modern)
            return None if arguments is None else [*renamed, *arguments]
        if reference in self.decorated and modern.form is Form.DECORATOR:
            return [*renamed, self.insert(reference, f'(device_type="{modern.device}")', after=True)]
        return None

    def _modern_arguments(self, call: cst.Call, modern: Modern) -> list[Replacement] | None:
        """Insertions that put the old call's arguments in the new API's terms; None when `*args`
        hides what they mean."""
        if any(arg.star == "*" for arg in call.args):
            return None
        positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
        keywords = [arg for arg in call.args if arg.keyword is not None or arg.star]
        if modern.form is Form.DECORATOR:
            if any(keyword.keyword is not None and keyword.keyword.value == "device_type" for keyword in keywords):
                return None
            device = f'device_type="{modern.device}"'
            if positional:
                return [self.insert(positional[-1], f", {device}", after=True)]
            if keywords:
                return [self.insert(keywords[0], f"{device}, ")]
            return [self._inside_empty_call(call, device)]
        if len(positional) > len(modern.old_positional):
            return None
        device = f'"{modern.device}"'
        # The old positionals become keywords, the device goes first (on a line of its own when the
        # arguments are one per line); one insertion per place, or they would conflict.
        named = [f"{name}=" for name in modern.old_positional[: len(positional)]]
        first = positional[0] if positional else (keywords[0] if keywords else None)
        if first is None:
            return [self._inside_empty_call(call, device)]
        separator = self._line_break_before(call, first) or " "
        insertions = [self.insert(first, f"{device},{separator}{named[0] if positional else ''}")]
        insertions += [self.insert(argument, name) for argument, name in zip(positional[1:], named[1:], strict=True)]
        return insertions

    def _inside_empty_call(self, call: cst.Call, text: str) -> Replacement:
        end = self.context.parsed.offsets(call)[1] - 1  # the closing parenthesis
        return Replacement(end, end, text)

    def _line_break_before(self, call: cst.Call, first: cst.Arg) -> str:
        """The newline and indentation between the call's `(` and its first argument, if there is one."""
        text = self.context.parsed.text
        opening = text.find("(", self.context.parsed.offsets(call.func)[1])
        between = text[opening + 1 : self.context.parsed.offsets(first)[0]]
        # Only blanks follow the last line break: a comment ends at one, and the argument starts the line.
        *above, indent = re.split(r"\r\n?|\n", between)
        return self.context.parsed.module.default_newline + indent if above else ""


def _all_names(module: cst.Module) -> set[str]:
    """The string names a module lists in `__all__` (assigned or extended at its top level)."""
    names: set[str] = set()
    for statement in statements(module):
        targets: list[cst.BaseAssignTargetExpression | None]
        if isinstance(statement, cst.Assign):
            targets = [target.target for target in statement.targets]
        else:
            targets = [getattr(statement, "target", None)]  # `__all__ += [...]`, `__all__: list[str] = [...]`
        if any(isinstance(target, cst.Name) and target.value == "__all__" for target in targets):
            value = getattr(statement, "value", None)
            if isinstance(value, (cst.List, cst.Tuple)):
                items = [string_value(item.value) for item in value.elements if isinstance(item, cst.Element)]
                names.update(item for item in items if item is not None)
    return names


def _torch_head(func: cst.Attribute, names: ImportTable) -> cst.BaseExpression | None:
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


def _spelled(statement: ImportStatement) -> str:
    """`from torch.cuda.amp import autocast, GradScaler` on one line, however it is laid out."""
    aliases = statement.names
    assert not isinstance(aliases, cst.ImportStar)  # a star import binds no name
    names = ", ".join(alias.evaluated_name for alias in aliases)
    if isinstance(statement, cst.Import):
        return f"import {names}"
    assert statement.module is not None  # `from . import x` binds no torch name
    return f"from {dotted_text(statement.module)} import {names}"
