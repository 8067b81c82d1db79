"""Whatever is in the config files, `botctl validate` answers with exit 0 (ok) or exit 4 and
problems in the FILE:LINE:COL shape: never a traceback, never an internal error.

Inputs: the shipped files with random keys, values and types put in, truncated at random
offsets, spliced with random text or bytes, replaced by random bytes; plus a file over 1 MiB,
an alias bomb and deeply nested lists and mappings."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from botctl.cli.app import app

REPO_ROOT = Path(__file__).resolve().parents[2]
FILES = ("strategies.yaml", "accounts.yaml")
SHIPPED = {name: (REPO_ROOT / name).read_bytes() for name in FILES}
PARSED = {name: yaml.safe_load(SHIPPED[name]) for name in FILES}
FIRST_PROBLEM = re.compile(r"^(strategies|accounts)\.yaml:\d+:\d+: ")
SUMMARY = re.compile(r"^(\d+) problem\(s\) in the config; nothing was run$")

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

runner = CliRunner()


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def validate(folder: Path, **contents: bytes):
    """Run `botctl validate` on the shipped files, with `contents` replacing some of them."""
    for name in FILES:
        data = contents.get(name.replace(".yaml", ""), SHIPPED[name])
        (folder / name).write_bytes(data)
    result = runner.invoke(app, ["--config-dir", str(folder), "validate"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "internal error" not in result.output, result.output
    assert result.exit_code in (0, 4), result.output
    if result.exit_code == 0:
        assert result.stdout.startswith("ok: ")
    else:
        # Split on "\n" only: a key may hold other line separators (see the control-character test).
        lines = result.stderr.rstrip("\n").split("\n")
        assert lines and FIRST_PROBLEM.match(lines[0]), result.stderr
        summary = SUMMARY.match(lines[-1])
        assert summary and int(summary.group(1)) >= 1, result.stderr
    return result


def test_the_shipped_files_pass(folder):
    assert validate(folder).exit_code == 0


# Random values and keys put into the parsed shipped files --------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Keys the files really use, so mutations reach deep into the structure and not only the top.
KNOWN_KEYS = sorted({k for doc in PARSED.values() for k in yaml.safe_dump(doc).replace(":", " ").split()
                     if k.isidentifier()})
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)


def _containers(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _containers(child, (*path, key))


@st.composite
def mutated_yaml(draw, doc):
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_containers(doc))))
        if not path:
            doc = draw(values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "add_key", "delete"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(keys)] = draw(values)
        elif isinstance(parent[path[-1]], list):
            parent[path[-1]].append(draw(values))
        else:
            parent[path[-1]] = {draw(keys): draw(values)}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans())).encode()


@FUZZ
@given(data=st.data(), which=st.sampled_from(FILES))
def test_random_keys_and_types(folder, data, which):
    text = data.draw(mutated_yaml(PARSED[which]))
    validate(folder, **{which.replace(".yaml", ""): text})


# Truncation, splicing and random bytes ---------------------------------------------------------

@FUZZ
@given(which=st.sampled_from(FILES), cut=st.floats(0, 1))
def test_truncated_at_a_random_offset(folder, which, cut):
    data = SHIPPED[which]
    validate(folder, **{which.replace(".yaml", ""): data[: int(len(data) * cut)]})


YAML_TEXT = st.text(alphabet=st.sampled_from(list(":-[]{},&*!|>'\"#%@`?\n\t ") + list("abcXYZ019.")), max_size=30)


@FUZZ
@given(which=st.sampled_from(FILES), at=st.floats(0, 1), insert=YAML_TEXT | st.text(max_size=30))
def test_random_text_spliced_in(folder, which, at, insert):
    data = SHIPPED[which]
    offset = int(len(data) * at)
    validate(folder, **{which.replace(".yaml", ""): data[:offset] + insert.encode() + data[offset:]})


@FUZZ
@given(which=st.sampled_from(FILES), at=st.floats(0, 1), insert=st.binary(min_size=1, max_size=16))
def test_random_bytes_spliced_in(folder, which, at, insert):
    data = SHIPPED[which]
    offset = int(len(data) * at)
    validate(folder, **{which.replace(".yaml", ""): data[:offset] + insert + data[offset:]})


@FUZZ
@given(strategies=st.binary(max_size=512), accounts=st.binary(max_size=512))
def test_random_bytes_for_both_files(folder, strategies, accounts):
    assert validate(folder, strategies=strategies, accounts=accounts).exit_code == 4


@settings(max_examples=40, deadline=None)
@given(which=st.sampled_from(FILES), opening=st.sampled_from(["[", "{a: ", "- "]), depth=st.integers(1, 3000))
def test_nesting_of_any_depth(folder, which, opening, depth):
    closing = {"[": "]", "{a: ": "}", "- ": ""}[opening]
    if opening == "- ":
        body = "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "x\n"
    else:
        body = "key: " + opening * depth + "x" + closing * depth + "\n"
    validate(folder, **{which.replace(".yaml", ""): body.encode()})


# Fixed hostile inputs --------------------------------------------------------------------------

def _alias_bomb() -> bytes:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for name, prev in zip("bcdefghi", "abcdefgh"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _alias_bomb_in_a_universe() -> bytes:
    text = SHIPPED["strategies.yaml"].decode()
    bomb = "\n".join(f"  u{i}: &u{i} [" + ", ".join([f"*u{i - 1}"] * 9) + "]" for i in range(1, 9))
    return text.replace("universes:\n", "universes:\n  u0: &u0 [SPY, TLT, SPY, TLT, SPY, TLT, SPY, TLT, SPY]\n"
                        + bomb + "\n", 1).encode()


HOSTILE = {
    "over-1-MiB": SHIPPED["strategies.yaml"] + b"#" + b"x" * (1 << 20) + b"\n",
    "over-1-MiB-of-data": b"universes:\n  big: [" + b"SPY, " * 220_000 + b"SPY]\n",
    "alias-bomb": _alias_bomb(),
    "alias-bomb-in-a-universe": _alias_bomb_in_a_universe(),
    "nested-lists-100k": b"universes:\n  u: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "nested-maps-10k": b"strategies:\n  M: " + b"{a: " * 10_000 + b"1" + b"}" * 10_000 + b"\n",
    "non-utf8": b"universes:\n  u: [\xc3\x28, \xa0\xa1, \xff]\n",
    "utf16-garbage": b"\xff\xfe" + b"\x00\xd8" * 10,
    "only-a-bom": b"\xef\xbb\xbf",
    "nul-bytes": b"strategies:\x00\n  M: {}\n",
    "python-tag": b"strategies: !!python/object/apply:os.system ['echo pwned']\n",
    "many-documents": b"---\nstrategies: {}\n---\nuniverses: {}\n",
    "merge-key": b"base: &b {universe: x}\nstrategies:\n  M:\n    <<: *b\n    steps: [select_all]\n",
    "complex-key": b"? [a, b]\n: c\n",
    "top-level-scalar": b"42\n",
    "empty": b"",
}


@pytest.mark.parametrize("which", FILES)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files(folder, which, name):
    result = validate(folder, **{which.replace(".yaml", ""): HOSTILE[name]})
    assert result.exit_code == 4


def test_a_file_over_1_mib_is_named_as_too_large(folder):
    result = validate(folder, accounts=HOSTILE["over-1-MiB"])
    assert "accounts.yaml:1:1: file is too large" in result.stderr


def test_an_alias_bomb_is_named_as_such(folder):
    result = validate(folder, strategies=HOSTILE["alias-bomb-in-a-universe"])
    assert "strategies.yaml:1:1: document expands to more than 100000 values" in result.stderr


def test_deep_nesting_is_named_as_such(folder):
    result = validate(folder, strategies=HOSTILE["nested-lists-100k"])
    assert "strategies.yaml:1:1: invalid YAML: nested too deeply" in result.stderr
