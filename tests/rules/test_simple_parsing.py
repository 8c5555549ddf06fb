"""simple_parsing's command line (simple_parsing 0.1: `ArgumentParser(argparse.ArgumentParser)` with
`add_arguments(Config, dest="config")`, and `simple_parsing.parse(Config)`): started plainly, the parsed
config holds its fields' defaults, nested configs (`field(default_factory=ModelConfig)`) included.

Shaped after quiet-star's `run_train_qwen.py`: the model's dtype is a string field of a nested model
config, read with `getattr(torch, config.model.dtype)`."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import check_files

CONFIG = """
    import dataclasses

    import torch
    from transformers import AutoModelForCausalLM

    {parser_import}


    @dataclasses.dataclass
    class ModelConfig:
        device: str = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: str = "float32"
        model_name: str = "Qwen/Qwen2-0.5B-Instruct"


    @dataclasses.dataclass
    class QwenDefaultModelConfig(ModelConfig):
        dtype: str = "{dtype}"


    @dataclasses.dataclass
    class Config:
        learning_rate: float = 1e-6
        model: ModelConfig = dataclasses.field(default_factory=ModelConfig)


    @dataclasses.dataclass
    class QwenDefaultConfig(Config):
        learning_rate: float = 2e-6
        model: QwenDefaultModelConfig = dataclasses.field(default_factory=QwenDefaultModelConfig)


    def parse_args() -> QwenDefaultConfig:
        {parse}


    def train(config: QwenDefaultConfig) -> None:
        dtype = getattr(torch, config.model.dtype)
        model = AutoModelForCausalLM.from_pretrained(config.model.model_name, torch_dtype=dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate){expect}


    if __name__ == "__main__":
        train(parse_args())
"""

ADD_ARGUMENTS = """parser = ArgumentParser()
        parser.add_arguments(QwenDefaultConfig, dest="config")
        return parser.parse_args().config"""


@pytest.mark.parametrize(
    ("parser_import", "parse"),
    [
        pytest.param("from simple_parsing import ArgumentParser", ADD_ARGUMENTS, id="add-arguments"),
        pytest.param(
            "from simple_parsing import ArgumentParser",
            ADD_ARGUMENTS.replace('dest="config"', '"config"'),
            id="add-arguments-dest-by-position",
        ),
        pytest.param("import simple_parsing", "return simple_parsing.parse(QwenDefaultConfig)", id="parse"),
    ],
)
@pytest.mark.parametrize(("dtype", "expect"), [("bfloat16", "  # expect: MP003"), ("float32", "")])
def test_a_parsed_config_holds_its_nested_defaults(
    parser_import: str, parse: str, dtype: str, expect: str, tmp_path: Path
) -> None:
    train = CONFIG.format(parser_import=parser_import, parse=parse, dtype=dtype, expect=expect)
    check_files({"run_train_qwen.py": train}, "MP003", tmp_path)
