"""Findings of earlier runs, kept in `.mplint_cache/` at the project root and reused when nothing
they depend on changed.

There is one entry per unit (a root file analysed with the files it read), one per file only
checked for syntax, and one file of the prefilter's facts (which rule words each text's code
mentions, what it imports: the plan of a run), keyed by content. An entry is valid while the
content hash of every file it read is the same, the run has the same files (imports resolve
against them), and the salt is the same: mplint's version and code, the selected rules and the
configuration file. Entries are JSON written
through a temporary file and renamed into place, so concurrent runs never see half an entry;
an entry that cannot be read or decoded is treated as missing and rewritten.

A long-lived process (the language server) also keeps entries in `Memory` across its runs: an
edit then re-analyses only the units that read the edited text, without reading JSON back. Texts
that are not on disk (an editor's unsaved buffer) are `unsaved`: their entries stay in memory, so
the directory only ever holds results of files as they are saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mplint
import mplint.rules
from mplint.findings import Applicability, Edit, Finding, Fix, Place, Severity
from mplint.run.prefilter import CodeFacts

DIRECTORY = ".mplint_cache"
# Bumped when the entry layout changes, so old entries read as stale rather than malformed.
_LAYOUT = 2
# The prefilter's facts of every file read so far (one file: a run reads them all at once).
_CODE_FACTS = "prefilter.json"
_MAX_CODE_FACTS = 100_000


@dataclass(frozen=True)
class _Entry:
    """The findings of one unit or syntax check, valid while `read` ({file: content hash}) holds,
    and the places of the optimizers a framework steps with fp32 master weights in the unit's run."""

    salt: str
    files: str
    read: Mapping[str, str | None]
    findings: tuple[Finding, ...]
    stepped: tuple[Place, ...] = ()


@dataclass
class Memory:
    """Entries, prefilter facts and content hashes kept across the runs of one process."""

    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    # By (salt, content hash): which words a text mentions depends on the rules selected.
    code_facts: dict[tuple[str, str], CodeFacts] = field(default_factory=dict)
    # path -> (text, its hash): a text the process still holds is not hashed again (compared by
    # identity: an edited buffer is a new string).
    digests: dict[str, tuple[str, str]] = field(default_factory=dict)

    def digest(self, path: str, text: str) -> str:
        known = self.digests.get(path)
        if known is None or known[0] is not text:
            known = self.digests[path] = (text, digest(text))
        return known[1]


class Cache:
    """The entries under `directory`, valid for runs with this `salt` over files of `hashes`;
    with `memory`, also those an earlier run of this process kept; what reads an `unsaved` text
    is not written to `directory`."""

    def __init__(
        self,
        directory: Path,
        salt: str,
        hashes: Mapping[str, str],
        memory: Memory | None = None,
        unsaved: frozenset[str] = frozenset(),
    ) -> None:
        self.directory = directory
        self.salt = salt
        self.hashes = hashes
        self.memory = memory
        self.unsaved = unsaved
        # Imports resolve against the run's file list: another list may read other files.
        self.files_digest = digest("\0".join(sorted(hashes)))
        # Data files (not of the run) that the entries used so far read, with their content hash.
        self.data_files: dict[str, str | None] = {}
        self._ready = False

    def get(self, kind: str, path: str) -> tuple[tuple[Finding, ...], tuple[Place, ...]] | None:
        """The cached findings (and stepped optimizers) of the unit (`kind` "unit") or syntax check
        ("syntax") of `path`, or None when there is no valid entry."""
        remembered = self.memory.entries.get((kind, path)) if self.memory is not None else None
        entry = remembered if remembered is not None else self._stored(kind, path)
        if entry is None or not self._valid(entry):
            return None
        if self.memory is not None:
            self.memory.entries[(kind, path)] = entry
        return entry.findings, entry.stepped

    def _valid(self, entry: _Entry) -> bool:
        return (
            entry.salt == self.salt
            and entry.files == self.files_digest
            and all(self.hash_of(name) == hashed for name, hashed in entry.read.items())
        )

    def _stored(self, kind: str, path: str) -> _Entry | None:
        try:
            data = json.loads(self._entry_path(kind, path).read_bytes())
            findings = tuple(decoded(item) for item in data["findings"])
            stepped = tuple((str(path), int(line), int(column)) for path, line, column in data["stepped"])
            return _Entry(data["salt"], data["files"], dict(data["read"]), findings, stepped)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing, truncated or from another layout: rebuilt by the caller

    def put(
        self,
        kind: str,
        path: str,
        read: Iterable[str],
        findings: Sequence[Finding],
        stepped: Sequence[Place] = (),
    ) -> None:
        """Store the findings (and stepped optimizers) of `path`'s unit or syntax check, which read
        the files `read`. A cache that cannot be written is not an error: the next run recomputes."""
        hashes = {name: self.hash_of(name) for name in read}
        entry = _Entry(self.salt, self.files_digest, hashes, tuple(findings), tuple(stepped))
        if self.memory is not None:
            self.memory.entries[(kind, path)] = entry
        if self.unsaved.isdisjoint(entry.read):
            data = {
                "salt": entry.salt,
                "files": entry.files,
                "read": entry.read,
                "findings": [encoded(finding) for finding in entry.findings],
                "stepped": [list(place) for place in entry.stepped],
            }
            with contextlib.suppress(OSError):
                self._prepare()
                write_cache_file(self._entry_path(kind, path), json.dumps(data).encode())

    def hash_of(self, name: str) -> str | None:
        """The content hash of a file an entry read: a file of the run, or a data file the analysis
        read beside the code (a framework's JSON config), hashed from disk once per run (and kept
        in `data_files`); None when unreadable."""
        if name in self.hashes:
            return self.hashes[name]
        if name not in self.data_files:
            self.data_files[name] = data_file_hash(name)
        return self.data_files[name]

    def code_facts(self) -> dict[str, CodeFacts]:
        """The prefilter's facts of the run's files whose text an earlier run read, by path."""
        remembered = self.memory.code_facts if self.memory is not None else {}
        known = {
            path: remembered[(self.salt, hashed)]
            for path, hashed in self.hashes.items()
            if (self.salt, hashed) in remembered
        }
        return known if len(known) == len(self.hashes) else {**self._stored_code_facts(), **known}

    def _stored_code_facts(self) -> dict[str, CodeFacts]:
        try:
            stored = json.loads((self.directory / _CODE_FACTS).read_bytes())
            if stored["salt"] != self.salt:
                return {}
            by_digest = stored["facts"]
            return {
                path: CodeFacts(
                    frozenset(by_digest[hashed][0]), tuple((dots, name) for dots, name in by_digest[hashed][1])
                )
                for path, hashed in self.hashes.items()
                if hashed in by_digest
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # missing, truncated or from another layout: the prefilter reads the files

    def put_code_facts(self, facts: Mapping[str, CodeFacts]) -> None:
        """Add the facts a run read (by path) to the stored ones, keyed by content, so that any run
        with the same rules over the same text reuses them; bounded by dropping other runs' files.
        Facts of unsaved texts are only remembered."""
        if self.memory is not None and facts:
            remembered = self.memory.code_facts
            remembered.update({(self.salt, self.hashes[path]): found for path, found in facts.items()})
            if len(remembered) > 2 * len(self.hashes):  # every edit of a buffer is a new text
                kept = {(self.salt, hashed) for hashed in self.hashes.values()}
                self.memory.code_facts = {key: found for key, found in remembered.items() if key in kept}
        facts = {path: found for path, found in facts.items() if path not in self.unsaved}
        if not facts:
            return
        try:
            stored = json.loads((self.directory / _CODE_FACTS).read_bytes())
            by_digest = stored["facts"] if stored.get("salt") == self.salt else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            by_digest = {}
        fresh = {
            self.hashes[path]: [sorted(found.words), [list(entry) for entry in found.imports]]
            for path, found in facts.items()
        }
        if len(by_digest) + len(fresh) > _MAX_CODE_FACTS:
            current = set(self.hashes.values())
            by_digest = {hashed: entry for hashed, entry in by_digest.items() if hashed in current}
        by_digest.update(fresh)
        with contextlib.suppress(OSError):
            self._prepare()
            write_cache_file(self.directory / _CODE_FACTS, json.dumps({"salt": self.salt, "facts": by_digest}).encode())

    def _entry_path(self, kind: str, path: str) -> Path:
        return self.directory / f"{kind}-{digest(path)[:32]}.json"

    def _prepare(self) -> None:
        if not self._ready:
            prepare_directory(self.directory)
            self._ready = True


def prepare_directory(directory: Path) -> None:
    """Create the cache directory (or a folder of it), ignored by git; OSError when it cannot be."""
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        write_cache_file(ignore, b"# Created by mplint: this directory is a cache.\n*\n")


def open_cache(
    root: Path,
    texts: Mapping[str, str | None],
    rule_codes: Iterable[str],
    config_file: Path | None,
    *,
    memory: Memory | None = None,
    unsaved: Iterable[str] = (),
) -> Cache:
    """The cache of the project at `root` for a run over `texts` ({path: text}) with these rules;
    `memory` and `unsaved` as `Cache` takes them."""
    hashed = memory.digest if memory is not None else lambda _, text: digest(text)
    hashes = {path: hashed(path, text) for path, text in texts.items() if text is not None}
    return Cache(root / DIRECTORY, run_salt(rule_codes, config_file), hashes, memory, frozenset(unsaved))


def run_salt(rule_codes: Iterable[str], config_file: Path | None) -> str:
    """What every cached result depends on besides the files: mplint's version and code, the
    selected rules and the configuration file's bytes."""
    config = _read_or_empty(config_file) if config_file is not None else b""
    return digest(
        "\0".join([str(_LAYOUT), mplint.__version__, code_fingerprint(), *sorted(rule_codes)])
        + hashlib.blake2b(config).hexdigest()
    )


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def data_file_hash(name: str) -> str | None:
    """The content hash of a data file the analysis read (None when it cannot be read)."""
    try:
        return digest(Path(name).read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return None


def code_fingerprint() -> str:
    """mplint's own sources by name, size and modification time: an edited rule or engine
    (a development checkout, where the version stays the same) makes old results stale."""
    directories = {Path(mplint.__file__).parent, *map(Path, mplint.rules.__path__)}
    stamps = []
    for directory in directories:
        for source in sorted(directory.rglob("*.py")):
            with contextlib.suppress(OSError):
                status = source.stat()
                stamps.append(f"{source}:{status.st_size}:{status.st_mtime_ns}")
    return digest("\n".join(sorted(stamps)))


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def write_cache_file(path: Path, data: bytes) -> None:
    """Write through a temporary file renamed into place: concurrent runs never read half of it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def encoded(finding: Finding) -> dict[str, Any]:
    """`finding` as JSON data (a static finding: no verdict, no related notes yet)."""
    data: dict[str, Any] = {
        "code": finding.code,
        "name": finding.name,
        "path": finding.path,
        "span": [finding.line, finding.column, finding.end_line, finding.end_column],
        "message": finding.message,
        "severity": finding.severity.value,
    }
    if finding.fix is not None:
        data["fix"] = {
            "description": finding.fix.description,
            "applicability": finding.fix.applicability.value,
            "edits": [
                [edit.line, edit.column, edit.end_line, edit.end_column, edit.replacement] for edit in finding.fix.edits
            ],
        }
    return data


def decoded(data: dict[str, Any]) -> Finding:
    """The finding `encoded` made `data` of."""
    fix = data.get("fix")
    line, column, end_line, end_column = data["span"]
    return Finding(
        data["code"],
        data["name"],
        data["path"],
        line,
        column,
        end_line,
        end_column,
        data["message"],
        Severity(data["severity"]),
        fix=None
        if fix is None
        else Fix(
            fix["description"],
            Applicability(fix["applicability"]),
            tuple(Edit(*edit) for edit in fix["edits"]),
        ),
    )
