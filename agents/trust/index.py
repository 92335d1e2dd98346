"""A compiled, versioned policy set with a path-segment trie over resource globs.

Globs are split on ``/``; a segment is a literal, ``*`` (exactly one
segment), a partial glob such as ``db_*`` (one segment, regex-matched) or
``**`` (zero or more segments).  Lookup walks the trie once per request, so
its cost depends on path depth and the number of wildcard branches, not on
the number of policies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dharma.agents.trust.policy import CompiledPolicy, Policy, compile_policy
from dharma.streams.yaml_files import read_yaml_documents

__all__ = ["PolicyError", "PolicySet", "default_policy_dir", "load_policy_set", "validate_policies"]


#: Distinct (resource, action) pairs whose matches are remembered (the set is immutable).
_MATCH_CACHE = 65_536


class PolicyError(ValueError):
    """A policy file or set is invalid; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


class _Node:
    __slots__ = ("deep", "globs", "here", "literal", "star")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.globs: dict[str, tuple[re.Pattern[str], _Node]] = {}
        self.star: _Node | None = None
        self.deep: _Node | None = None
        self.here: list[tuple[int, CompiledPolicy]] = []

    def child(self, seg: str) -> _Node:
        if seg == "**":
            self.deep = self.deep or _Node()
            return self.deep
        if seg == "*":
            self.star = self.star or _Node()
            return self.star
        if "*" in seg:
            if seg not in self.globs:
                rx = re.compile("[^/]*".join(re.escape(p) for p in seg.split("*")))
                self.globs[seg] = (rx, _Node())
            return self.globs[seg][1]
        return self.literal.setdefault(seg, _Node())

    def walk(self, segs: Sequence[str], i: int, out: list[tuple[int, CompiledPolicy]]) -> None:
        if self.deep is not None:
            for j in range(i, len(segs) + 1):
                self.deep.walk(segs, j, out)
        if i == len(segs):
            out.extend(self.here)
            return
        seg = segs[i]
        nxt = self.literal.get(seg)
        if nxt is not None:
            nxt.walk(segs, i + 1, out)
        if self.star is not None:
            self.star.walk(segs, i + 1, out)
        for rx, node in self.globs.values():
            if rx.fullmatch(seg):
                node.walk(segs, i + 1, out)


def _specificity(glob: str) -> tuple[int, int]:
    segs = glob.split("/")
    literal = sum(1 for s in segs if "*" not in s)
    return (literal, -sum(1 for s in segs if s == "**"))


class PolicySet:
    """Policies compiled once and indexed by resource glob.

    Parameters
    ----------
    policies
        The policies; ids must be unique.
    version
        Version string of the set, stamped on every decision.
    """

    def __init__(self, policies: Iterable[Policy], version: str) -> None:
        self.version = version
        self.policies: tuple[CompiledPolicy, ...] = tuple(compile_policy(p) for p in policies)
        ids = [cp.id for cp in self.policies]
        dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
        if dupes:
            raise PolicyError([f"duplicate policy id {d}" for d in dupes])
        rank = {cp.id: max(_specificity(g) for g in cp.policy.resources) for cp in self.policies}
        ordered = sorted(self.policies, key=lambda cp: (tuple(-x for x in rank[cp.id]), cp.id))
        self._root = _Node()
        self._match = lru_cache(maxsize=_MATCH_CACHE)(self._walk)  # the set is immutable
        self._split = lru_cache(maxsize=_MATCH_CACHE)(self._split_walk)
        for order, cp in enumerate(ordered):
            for glob in cp.policy.resources:
                node = self._root
                for seg in glob.split("/"):
                    node = node.child(seg)
                node.here.append((order, cp))

    def __len__(self) -> int:
        return len(self.policies)

    def match(self, resource: str, action: str) -> tuple[CompiledPolicy, ...]:
        """Policies covering ``resource`` and ``action``, most specific first (memoised)."""
        return self._match(resource, action)

    def match_split(self, resource: str, action: str) -> tuple[
            tuple[CompiledPolicy, ...], tuple[CompiledPolicy, ...]]:
        """:meth:`match` as (forbid policies, permit policies), each most specific first."""
        return self._split(resource, action)

    def _split_walk(self, resource: str, action: str) -> tuple[
            tuple[CompiledPolicy, ...], tuple[CompiledPolicy, ...]]:
        matched = self._match(resource, action)
        return (tuple(cp for cp in matched if cp.forbid),
                tuple(cp for cp in matched if not cp.forbid))

    def _walk(self, resource: str, action: str) -> tuple[CompiledPolicy, ...]:
        found: list[tuple[int, CompiledPolicy]] = []
        self._root.walk(resource.split("/"), 0, found)
        unique = dict(found)
        return tuple(cp for _, cp in sorted(unique.items()) if cp.allows_action(action))

    @classmethod
    def from_documents(cls, docs: Sequence[Any], version: str | None = None,
                       names: Sequence[str] | None = None) -> PolicySet:
        """Build a set from parsed YAML documents (``{version, policies}`` mappings or
        lists of policies); ``names`` label the documents in errors (file names).

        A document that holds no policy (empty, ``policies`` missing, empty or not a
        list, a top-level key other than ``version`` and ``policies``) is an error: a
        misspelt key or a truncated file must not drop its policies silently.
        """
        policies, declared, errors = [], set(), []
        for n, doc in enumerate(docs):
            label = names[n] if names is not None else f"document {n}"
            items, problem = _policy_list(doc)
            if problem:
                errors.append(f"{label}: {problem}")
                continue
            if isinstance(doc, dict) and doc.get("version") is not None:
                declared.add(str(doc["version"]))
            for k, item in enumerate(items):
                try:
                    policies.append(Policy.model_validate(item))
                except ValidationError as exc:
                    pid = item.get("id", f"#{k}") if isinstance(item, dict) else f"#{k}"
                    errors.extend(f"{label} policy {pid}: {e['msg']}" for e in exc.errors())
        if errors:
            raise PolicyError(errors)
        digest = hashlib.sha256(repr(sorted(p.model_dump_json() for p in policies)).encode())
        auto = digest.hexdigest()[:12]
        return cls(policies, version or ("+".join(sorted(declared)) + f"@{auto}").lstrip("+"))


#: Top-level keys of a policy document.
_DOCUMENT_KEYS = frozenset({"version", "policies"})


def _policy_list(doc: Any) -> tuple[list[Any], str]:
    """The policies of a document, or why it holds none.

    >>> _policy_list({"polices": [{"id": "p"}]})[1]
    "unknown top-level key(s) ['polices'] (only 'policies' and 'version')"
    >>> _policy_list(None)[1]
    'empty: no policies'
    """
    if doc is None:
        return [], "empty: no policies"
    if isinstance(doc, dict):
        unknown = sorted(map(str, doc.keys() - _DOCUMENT_KEYS))
        if unknown:
            return [], f"unknown top-level key(s) {unknown} (only 'policies' and 'version')"
        if "policies" not in doc:
            return [], "no 'policies' list"
        doc = doc["policies"]
    if not isinstance(doc, list):
        return [], "'policies' must be a list"
    if not doc:
        return [], "no policies (delete the file if none is meant)"
    return doc, ""


def load_policy_set(path: str | Path) -> PolicySet:
    """Load every ``*.yaml``/``*.yml`` file of a directory (or one file)."""
    docs, names = read_yaml_documents(Path(path), PolicyError, "policy")
    return PolicySet.from_documents(docs, names=names)


def validate_policies(path: str | Path) -> list[str]:
    """Return every problem in a policy directory (empty when valid)."""
    try:
        load_policy_set(path)
    except PolicyError as exc:
        return exc.errors
    except OSError as exc:
        return [f"{path}: {exc.strerror or exc}"]
    return []


def default_policy_dir() -> Path:
    """Directory of the packaged default policy set."""
    return Path(__file__).with_name("policies")
