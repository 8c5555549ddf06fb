"""yacs configs (`from yacs.config import CfgNode as CN`), as Dassl, the CoOp family of prompt
learners and detectron2-style repositories write them: the defaults are attribute assignments of
upper-case keys (`cfg.TRAINER.COOP.PREC = "fp16"  # fp16, fp32, amp` in the training script's
`extend_cfg(cfg)`, `_C.SOLVER.AMP = False` in a defaults file). `merge_from_file` (a YAML file) and
`merge_from_list` (the command line's `KEY value` pairs) may change them, and the code that reads
them often gets the config from where the analysis does not follow it: Dassl builds the trainer from
a registry (`build_trainer(cfg)`), which hands it `self.cfg`.

A read of a path of upper-case keys (`self.cfg.TRAINER.COOP.PREC`) on a value of unknown provenance
is the default the repository's code assigns that path, where every assignment of the path in its
yacs files (those naming `CfgNode`) assigns the same literal, no YAML file of the repository sets the
path to another value, and no launch file (a shell script, a README) gives the path another on a
command line. Only paths of at least two keys: a single one (`optim_cfg.NAME`) says too little of
which config it is.
"""

from __future__ import annotations

import ast
import re
import weakref
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.frameworks.accelerate_launch import LAUNCH_SUFFIXES, repository_texts
from mplint.analysis.frameworks.hydra import yaml_mapping
from mplint.analysis.project import ModuleIndex
from mplint.analysis.values import Value, const
from mplint.repository import repository_root

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# `cfg.TRAINER.COOP.PREC = "fp16"  # a comment`: the keys after the config's own name, and a literal.
_DEFAULT = re.compile(
    r"""^[ \t]*[A-Za-z_]\w*((?:\.[A-Z][A-Z0-9_]*){2,})[ \t]*=[ \t]*"""
    r"""("[^"\n]*"|'[^'\n]*'|-?\d+(?:\.\d+)?(?:[eE]-?\d+)?|True|False|None)[ \t]*(?:#.*)?$""",
    re.MULTILINE,
)
_YACS_FILE = "CfgNode"
_YAML_SUFFIXES = (".yaml", ".yml")

# A default and the files that tell it (the run's dependencies), or None where they disagree.
Default = tuple[object, tuple[str, ...]] | None
# Per run (its module index) and repository root: each key path's default.
_DEFAULTS: weakref.WeakKeyDictionary[ModuleIndex, dict[str, dict[str, Default]]] = weakref.WeakKeyDictionary()


def default_read(self: Interpreter, node: cst.Attribute, path: str) -> Value | None:
    """The default of the key path `node` reads (`self.cfg.TRAINER.COOP.PREC`) in the repository of
    the file at `path`, where it has one; None otherwise."""
    keys = _upper_keys(node)
    if len(keys) < 2:
        return None
    defaults = _repository_defaults(self.index, repository_root(path, self.index.root))
    found = defaults.get(".".join(keys))
    if found is None:
        return None
    value, files = found
    self.data_files.update(files)
    return const(value)


def _upper_keys(node: cst.Attribute) -> list[str]:
    """The upper-case keys that end an attribute chain (`self.cfg.TRAINER.COOP.PREC`: TRAINER, COOP, PREC)."""
    keys: list[str] = []
    current: cst.BaseExpression = node
    while isinstance(current, cst.Attribute) and current.attr.value.isupper():
        keys.append(current.attr.value)
        current = current.value
    return keys[::-1]


def _repository_defaults(index: ModuleIndex, root: str) -> dict[str, Default]:
    known = _DEFAULTS.setdefault(index, {})
    if root not in known:
        known[root] = _defaults(index, root)
    return known[root]


def _defaults(index: ModuleIndex, root: str) -> dict[str, Default]:
    """Each key path the repository's yacs files assign a literal, with that literal where all its
    assignments and the repository's YAML files and launch commands agree."""
    found: dict[str, Default] = {}
    for path, text in index.texts_under(root):
        if _YACS_FILE not in text:
            continue
        for keys, written in _DEFAULT.findall(text):
            try:
                key, value = keys[1:], ast.literal_eval(written)
            except (ValueError, SyntaxError):  # a string with an escape Python refuses (`"C:\N"`)
                continue
            present = found.get(key, (value, ()))
            found[key] = (value, (*present[1], path)) if present is not None and present[0] == value else None
    if not found:
        return found
    for path, text in repository_texts(root):
        mentioned = [key for key, default in found.items() if default is not None and key.rpartition(".")[2] in text]
        data = yaml_mapping(text) if mentioned and path.endswith(_YAML_SUFFIXES) else None
        for key in mentioned:
            given = _given(path, text, data, key)
            default = found[key]
            if given is _NOT_GIVEN or default is None:
                continue
            found[key] = (default[0], (*default[1], path)) if _same(given, default[0]) else None
    return found


def _same(given: object, default: object) -> bool:
    """Whether a value as a YAML file or a command line writes it is the default (`True` as `true`)."""
    return given == default if isinstance(default, str) else str(given).lower() == str(default).lower()


_NOT_GIVEN = object()


def _given(path: str, text: str, data: object, key: str) -> object:
    """What a YAML config (its nested mappings `data`) or a launch file's command line
    (`TRAINER.COOP.PREC fp32`) sets the key path to, as written; `_NOT_GIVEN` where it does not."""
    if data is not None:
        for part in key.split("."):
            data = data.get(part, _NOT_GIVEN) if isinstance(data, dict) else _NOT_GIVEN
        return data
    if path.endswith(LAUNCH_SUFFIXES):
        written = re.search(rf"(?<![\w.]){re.escape(key)}\s+['\"]?([^\s'\"]+)", text)
        return written.group(1) if written else _NOT_GIVEN
    return _NOT_GIVEN
