from mplint.rule import Rule


class InvalidSyntax(Rule):
    """A file could not be read or parsed, so nothing in it was checked.

    ## What it does
    Reports a file that is not valid Python (a syntax error, with the parser's line and message),
    not valid UTF-8, or binary. The engine emits it; the rest of the run goes on.

    ## Why is this bad
    mplint cannot see precision bugs in code it cannot parse, and a silent skip would look like
    a clean file.

    ## Example
    ```python
    def train(:
        ...
    ```

    ## Fix
    Fix the syntax error or the file's encoding (save it as UTF-8), or exclude the file in
    `[tool.mplint] extend-exclude`.
    """

    CODE = "MP000"
    NAME = "invalid-syntax"
    MESSAGE = "cannot parse: {reason}"
    VALID = ("import torch\nmodel = torch.nn.Linear(4, 4).half()\n",)
    INVALID = ("import torch\ndef train(:\n    model.half()\n",)
