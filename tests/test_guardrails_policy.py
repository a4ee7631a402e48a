"""The guardrail policy file: the shipped one loads, broken ones fail at load with file and reason."""

from pathlib import Path

import pytest
import yaml

from assistant.errors import ConfigurationError
from assistant.guardrails.policy import DEFAULT_POLICY, load_policy


def _variant(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_shipped_policy_loads():
    policy = load_policy()
    assert policy.safety.patterns.search("a guy pulled a gun on me")
    assert policy.safety.not_safety.search("i want to kill this order")
    assert "911" in policy.safety.message


def test_an_override_file_changes_behaviour(tmp_path: Path):
    path = _variant(tmp_path, lambda d: d["safety"].update(message="Call 112 now."))
    assert load_policy(path).safety.message == "Call 112 now."


def test_bad_yaml_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("safety: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"broken\.yaml: bad YAML"):
        load_policy(path)


def test_an_invalid_regex_names_the_key(tmp_path: Path):
    path = _variant(tmp_path, lambda d: d["safety"]["patterns"].append("(unclosed"))
    with pytest.raises(ConfigurationError, match=r"safety\.patterns.*invalid regular expression"):
        load_policy(path)


def test_a_missing_section_names_it(tmp_path: Path):
    path = _variant(tmp_path, lambda d: d.pop("defects"))
    with pytest.raises(ConfigurationError, match=r"policy\.yaml: defects"):
        load_policy(path)
