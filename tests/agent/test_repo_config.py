import json

import pytest

from app.agent.repo_config import (
    RepoConfig,
    RepoConfigError,
    detect_test_command,
    instructed_test_command,
    parse_config,
)


def test_config_with_setup_and_test() -> None:
    config = parse_config("setup: |\n  pip install -e .\ntest: make check\n")
    assert config == RepoConfig(setup="pip install -e .", test="make check")
    assert config.network == "setup"  # the default: the setup script alone gets the network


@pytest.mark.parametrize("policy", ["none", "setup", "always"])
def test_network_policy(policy: str) -> None:
    assert parse_config(f"network: {policy}\n").network == policy


@pytest.mark.parametrize("text", [None, "", "\n", "# only a comment\n"])
def test_empty_config(text: str | None) -> None:
    assert parse_config(text) == RepoConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test: [a, b]", "test must be a string"),
        ("- a\n- b", "must be a mapping"),
        ("tests: pytest", "unknown key(s) tests"),
        ("test: 'unclosed", "not valid YAML"),
        ("network: everything", "network must be one of none | setup | always, not 'everything'"),
        ("network: off", "network must be one of none | setup | always, not False"),
        ("network: " + "x" * 500, "not '" + "x" * 39 + "$"),  # the repository's text, bounded
    ],
)
def test_bad_config_says_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(RepoConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(text)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("# Dev\n\nTest command: `make check`\n", "make check"),
        ("- **Tests**: `tox -e py311`", "tox -e py311"),
        ("Run tests with `npm run test:unit`.", "npm run test:unit"),
        ("running the tests: `go test ./pkg/...`", "go test ./pkg/..."),
        ("We like tests. Use `pytest` sometimes.", None),
        (None, None),
    ],
)
def test_test_command_from_agents_md(text: str | None, command: str | None) -> None:
    assert instructed_test_command(text) == command


def _detect(files: dict[str, str]) -> str | None:
    return detect_test_command(list(files), files.get)


@pytest.mark.parametrize(
    ("files", "command"),
    [
        ({"tests/test_calc.py": "", "calc.py": ""}, "python3 -m pytest -q"),
        ({"pyproject.toml": "[tool.pytest.ini_options]\n"}, "python3 -m pytest -q"),
        ({"setup.cfg": "[tool:pytest]\n"}, "python3 -m pytest -q"),
        ({"pkg/calc_test.py": ""}, "python3 -m pytest -q"),
        ({"package.json": json.dumps({"scripts": {"test": "jest"}})}, "npm test"),
        ({"go.mod": "module x"}, "go test ./..."),
        ({"Cargo.toml": "[package]"}, "cargo test"),
        ({"Makefile": "build:\n\ttrue\ntest: build\n\ttrue\n"}, "make test"),
    ],
)
def test_detection(files: dict[str, str], command: str) -> None:
    assert _detect(files) == command


@pytest.mark.parametrize(
    "files",
    [
        {"package.json": json.dumps({"scripts": {"test": 'echo "Error: no test specified"'}})},
        {"package.json": "not json"},
        {"Makefile": "build:\n\ttrue\n"},
        {"pyproject.toml": "[project]\nname='x'\n", "README.md": ""},
        {},
    ],
)
def test_nothing_detected(files: dict[str, str]) -> None:
    assert _detect(files) is None


def test_pytest_wins_over_make() -> None:
    assert _detect({"conftest.py": "", "Makefile": "test:\n\tpytest\n"}) == "python3 -m pytest -q"
