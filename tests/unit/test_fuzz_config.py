"""Property-based fuzzing of config.json loading, in process: whatever the
document, `parse_config` returns a Spec or raises ConfigError with a one-line
message, never another exception, never a hang. Valid documents parse.

Examples per run (reproducible: derandomized, no database): 1,834 here; the
create fuzzing in tests/integration/test_fuzz_create.py adds the CLI side.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from specs import model
from specs.config import ConfigError, parse_config, parse_process
from tests.support import fuzz

BUNDLE = "/nonexistent/bundle"


def check_document(data):
    """The property: a Spec, or a ConfigError naming config.json (the CLI
    prints it as one line: see test_control_characters_stay_on_one_line)."""
    with fuzz.time_limit(20, "parse_config"):
        try:
            spec = parse_config(data, BUNDLE)
        except ConfigError as e:
            assert str(e).startswith("config.json: ")
            return None
    assert isinstance(spec, model.Spec)
    return spec


@settings(max_examples=300, **fuzz.CI_SETTINGS)
@given(fuzz.valid_configs())
def test_valid_configs_parse(data):
    spec = check_document(data)
    assert spec is not None, "a valid document was refused"
    assert spec.process.args[0] == "sh"


@settings(max_examples=500, **fuzz.CI_SETTINGS)
@given(fuzz.mutated_configs())
def test_mutated_configs(data):
    check_document(data)


@settings(max_examples=200, **fuzz.CI_SETTINGS)
@given(fuzz.truncated_configs())
def test_truncated_configs_are_refused(data):
    assert check_document(data) is None


@settings(max_examples=300, **fuzz.CI_SETTINGS)
@given(fuzz.typed_configs())
def test_wrong_types(data):
    check_document(data)


@settings(max_examples=24, **fuzz.CI_SETTINGS)  # every combination the strategy has
@given(fuzz.huge_configs())
def test_huge_configs(data):
    spec = check_document(data)
    if len(data) > 8 << 20:
        assert spec is None


@settings(max_examples=200, **fuzz.CI_SETTINGS)
@given(fuzz.nul_configs())
def test_nul_bytes_surrogates_and_control_characters(data):
    check_document(data)


@settings(max_examples=60, **fuzz.CI_SETTINGS)
@given(fuzz.deep_configs())
def test_deep_nesting(data):
    check_document(data)


@settings(max_examples=150, **fuzz.CI_SETTINGS)
@given(fuzz.junk)
def test_junk(data):
    check_document(data)


@settings(max_examples=100, **fuzz.CI_SETTINGS)
@given(st.one_of(fuzz.json_values, fuzz.mutated_doc().map(lambda d: d.get("process"))))
def test_process_json_for_exec(value):
    """exec --process reads a process.json: the same property."""
    import json
    with fuzz.time_limit(20, "parse_process"):
        try:
            parse_process(json.dumps(value))
        except ConfigError as e:
            assert str(e).startswith("process.json: ")


def test_control_characters_stay_on_one_line(tmp_path):
    """A key with a newline or a terminal escape ends up in the error's
    path; the CLI's one line escapes it."""
    import json
    import subprocess
    import sys
    doc = json.loads(fuzz.dump(fuzz.BASE))
    doc["annotations"] = {"a\nb\x1b[2J": 5}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    result = subprocess.run([sys.executable, "-m", "runsc_py", "--root", str(tmp_path / "root"), "create",
                             "--bundle", str(tmp_path), "x"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == ("runsc-py: config.json: annotations.a\\nb\\x1b[2J: must be a string, "
                             "not an integer\n")
