"""Reading the autocast regions and float16 marks off the autograd graph behind a backward's roots."""

from __future__ import annotations

import weakref
from typing import Any

import torch

from mplint.runtime import hooks


class _Node:
    """A C++ graph node: its metadata outlives the Python objects that stand for it."""

    def __init__(self, metadata: dict[str, Any], *children: _Node) -> None:
        self.metadata, self.children = metadata, children
        self.python_object: weakref.ref[_PythonNode] | None = None


class _PythonNode:
    """What `grad_fn` and `next_functions` return: made on demand, shared only while referenced."""

    def __init__(self, node: _Node) -> None:
        self._node = node

    @property
    def metadata(self) -> dict[str, Any]:
        return self._node.metadata

    @property
    def next_functions(self) -> tuple[tuple[_PythonNode, int], ...]:
        return tuple((_python_node(child), 0) for child in self._node.children)


def _python_node(node: _Node) -> _PythonNode:
    alive = node.python_object() if node.python_object else None
    if alive is None:
        alive = _PythonNode(node)
        node.python_object = weakref.ref(alive)
    return alive


def test_nodes_whose_python_objects_are_freed_during_the_walk_are_all_read() -> None:
    """torch 2.11 (on an H200) frees a node's Python object once nothing holds it: the next node's
    object reused its id, and a walk that remembered ids missed the fp16 region behind `.float()`."""
    node = _Node({hooks.REGION_KEY: "fp16 region", hooks.FP16_KEY: True})
    for _ in range(6):
        node = _Node({}, node)

    assert hooks.graph_facts([_python_node(node)]) == (("fp16 region",), True)


def test_a_shared_subgraph_is_read_once_and_regions_keep_their_first_order() -> None:
    shared = _Node({hooks.REGION_KEY: "inner"})
    root = _Node({hooks.REGION_KEY: "outer"}, _Node({}, shared), _Node({}, shared))

    assert hooks.graph_facts([_python_node(root), None]) == (("outer", "inner"), False)


def test_a_real_graph_reads_its_tags() -> None:
    weight = torch.randn(4, 4, requires_grad=True)
    hidden = (torch.randn(2, 4) @ weight).relu()
    hidden.grad_fn.metadata[hooks.REGION_KEY] = "region"
    loss = (hidden.double() * 2).sum()

    assert hooks.graph_facts([loss.grad_fn]) == (("region",), False)
