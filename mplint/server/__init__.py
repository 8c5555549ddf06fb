"""`mplint server`: a language server (LSP over stdio) for editors, an optional extra.

`workspace` holds what the server checks and calls the Python API (no LSP in it); `protocol`
turns findings, fixes and rule docs into LSP's shapes; `lsp` is the server on pygls. Only `lsp`
and `protocol` import pygls/lsprotocol, and nothing imports them but `mplint server`.
"""
