"""The text prefilter reads code only: comments and string statements (docstrings) run nothing, so a
word there does not make a file worth analysing, while a string that is part of code does.

`code_text` tells strings and comments apart with one regular expression; the reference it must
agree with is Python's own tokenizer, checked here on every training snippet of the rule tests
and on hypothesmith's programs.
"""

from __future__ import annotations

import io
import textwrap
import tokenize
from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.inputs import training_snippets
from mplint.api import lint_paths
from mplint.registry import all_rules
from mplint.run import engine
from mplint.run.prefilter import code_text
from mplint.text import SourceFile

# hypothesmith compiles the programs it generates; CPython's SyntaxWarnings about them are noise.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

WORDS = sorted({word for rule in all_rules() for word in rule.TRIGGERS | rule.SINKS if word.isidentifier()})

POLICY = "policy = torch.nn.Linear(16, 16).to(torch.bfloat16)\n"
LOG_PROBS = "logp = F.log_softmax(policy(batch), dim=-1)\n"


@pytest.mark.parametrize(
    ("source", "kept", "dropped"),
    [
        pytest.param("x = 1  # bfloat16 is faster\n", "x = 1", "bfloat16", id="comment"),
        pytest.param('"""Train in bfloat16."""\nx = 1\n', "x = 1", "bfloat16", id="module-docstring"),
        pytest.param(
            'def f():\n    r"""fp16 notes"""\n    return 1\n', "return 1", "fp16", id="raw-function-docstring"
        ),
        pytest.param('x = 1\n"autocast"  # a stray string statement\n', "x = 1", "autocast", id="string-statement"),
        pytest.param('dtype = "float16"\n', '"float16"', "", id="assigned-string"),
        pytest.param('x = "a # b"  # fp16\n', '"a # b"', "fp16", id="hash-inside-string"),
        pytest.param("x = 'it''s'  # bf16\ny = \"don't\"\n", "\"don't\"", "bf16", id="quotes-inside-strings"),
        pytest.param('x = "\\"float16\\""\n', '\\"float16\\"', "", id="escaped-quotes"),
        pytest.param('x = """a "quoted" \'\'\' bf16"""\n', "bf16", "", id="triple-quoted-assigned"),
        pytest.param('f(\n    "float16",\n)\n', '"float16"', "", id="string-alone-inside-brackets"),
        pytest.param('x = 1 + \\\n    "float16"\n', '"float16"', "", id="string-after-continuation"),
        pytest.param('"float16".join(parts)\n', '"float16"', "", id="string-with-method"),
        pytest.param('x = f"{model.half()}"  # fp16\n', "model.half()", "fp16", id="f-string"),
        pytest.param('"""doc"""\r\nx = 1  # fp16\r\n', "x = 1", "fp16", id="crlf"),
        pytest.param('x = "unterminated\n# fp16\n', "x = ", "fp16", id="unterminated-string"),
    ],
)
def test_code_text_keeps_code_and_drops_comments_and_string_statements(source: str, kept: str, dropped: str) -> None:
    code = code_text(source)

    assert kept in code
    if dropped:
        assert dropped not in code


def _tokenized_words(source: str) -> set[str]:
    """The rule words in `source` as Python's tokenizer sees its code: comments dropped, and every
    logical line made only of strings (a docstring, a string statement) dropped."""
    kept: list[str] = []
    line: list[tokenize.TokenInfo] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        line.append(token)
        if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            significant = [t for t in line if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE, tokenize.ENDMARKER)]
            if not (significant and all(t.type == tokenize.STRING for t in significant)):
                kept.extend(t.string for t in line if t.type != tokenize.COMMENT)
            line = []
    text = " ".join(kept)
    return {word for word in WORDS if word in text}


def _code_words(source: str) -> set[str]:
    code = code_text(source)
    return {word for word in WORDS if word in code}


@pytest.mark.parametrize("snippet", training_snippets())
def test_code_text_agrees_with_the_tokenizer_on_training_code(snippet: str) -> None:
    assert _code_words(snippet) == _tokenized_words(snippet)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(program=hypothesmith.from_grammar())
def test_code_text_agrees_with_the_tokenizer_on_generated_programs(program: str) -> None:
    commented = "".join(f"{line}  # {' '.join(WORDS)}\n" if line.strip() else "\n" for line in program.splitlines())
    try:
        expected = _tokenized_words(commented)
    except (tokenize.TokenError, SyntaxError):
        return  # a line the comment cannot follow (inside a string): no reference to compare with
    assert _code_words(commented) == expected


def test_a_file_mentioning_low_precision_only_in_comments_and_docstrings_is_not_analysed() -> None:
    header = textwrap.dedent(
        '''\
        """Fine-tune in bfloat16 (see the autocast notes)."""
        import torch
        import torch.nn.functional as F
        # policy = policy.to(torch.bfloat16)
        '''
    )
    files = [
        SourceFile("notes.py", header + "policy = torch.nn.Linear(16, 16)\n"),
        SourceFile("train.py", header + POLICY + LOG_PROBS),
    ]

    plan = engine.Run(files, all_rules()).plan()

    assert plan.units == ("train.py",)
    assert [source.path for source in plan.unanalysed] == ["notes.py"]


def test_a_caller_through_one_file_between_is_analysed(tmp_path: Path) -> None:
    """rasbt/reasoning-from-scratch: `distill.py` builds its optimizer over the model that
    `ch03.load_model_and_tokenizer` returns, which `qwen3.py` builds in bfloat16; only qwen3.py
    names a low precision, and ch03.py names no rule's word at all."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/__init__.py").write_text("")
    (tmp_path / "lib/qwen3.py").write_text(
        "import torch\n"
        'CONFIG = {"dtype": torch.bfloat16}\n'
        "class Qwen3(torch.nn.Module):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__()\n"
        '        self.head = torch.nn.Linear(8, 8, dtype=cfg["dtype"])\n'
    )
    (tmp_path / "lib/ch03.py").write_text(
        "from lib.qwen3 import CONFIG, Qwen3\n\ndef load_model():\n    return Qwen3(CONFIG)\n"
    )
    (tmp_path / "distill.py").write_text(
        "import torch\nfrom lib.ch03 import load_model\n\n"
        "model = load_model()\noptimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)\n"
    )
    findings = lint_paths([tmp_path], select=["MP003"]).findings
    assert [(Path(f.path).name, f.line) for f in findings] == [("distill.py", 5)]


def test_a_script_naming_no_word_that_imports_its_options_and_its_trainer_is_a_unit(tmp_path: Path) -> None:
    """NousResearch/atropos `example_trainer/grpo.py`: the entry point names no precision and no
    sink; its options' bf16 default is in `cli.py`, its model and optimizer in `trainers.py`. The
    configuration that runs starts at the script, so the trainer is read with its defaults."""
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer/__init__.py").write_text("")
    (tmp_path / "trainer/cli.py").write_text(
        "import argparse\n\n"
        "def parse_args():\n"
        "    parser = argparse.ArgumentParser()\n"
        '    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])\n'
        "    return parser.parse_args()\n"
    )
    (tmp_path / "trainer/trainers.py").write_text(
        "import torch\nfrom transformers import AutoModelForCausalLM\n\n"
        "def train(args):\n"
        '    model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-3B", torch_dtype=getattr(torch, args.dtype))\n'
        "    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)\n"
        "    return optimizer\n"
    )
    (tmp_path / "trainer/grpo.py").write_text(
        "from .cli import parse_args\nfrom .trainers import train\n\n"
        "def main():\n    train(parse_args())\n\n"
        'if __name__ == "__main__":\n    main()\n'
    )
    findings = lint_paths([tmp_path], select=["MP003"]).findings
    assert [(Path(f.path).name, f.line, f.severity.value) for f in findings] == [("trainers.py", 6, "error")]
