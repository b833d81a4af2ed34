"""The operator documentation names only commands, settings and routes that exist.

Docs rot quietly: a renamed flag or setting still reads well. These tests read
README.md, docs/*.md and docker/ and check what they name against the code itself:

- every `walletsvc ...` command line (code blocks and inline code) goes through the
  real argparse parser of `walletsvc.cli.main`; a global `--config` pointing at a file
  that does not exist makes `main` stop right after parsing, before any work;
- every ```toml block parses and validates against `walletsvc.config.Settings`
  through `load_settings`, which refuses unknown keys;
- every `WALLETSVC_*` variable names a setting (or one of the test harness's own);
- every `/api/v1/...` and `/webhooks/...` path, with its method where one is written
  before it, is a route the app declares;
- docker/compose.yaml's commands and environment pass the same checks.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

import walletsvc.web.app  # noqa: F401  (importing it registers every route on the router)
from walletsvc.cli import main
from walletsvc.config import NatsSinkSettings, Settings, load_settings
from walletsvc.web.api import router

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "docker" / "README.md", *(ROOT / "docs").glob("*.md")])
COMPOSE = ROOT / "docker" / "compose.yaml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
MISSING_CONFIG = "/nonexistent/walletsvc-docs-check.toml"

# Variables the test harness reads (tests/conftest.py and friends), not the service.
HARNESS_VARIABLES = {
    "WALLETSVC_TEST_DATABASE_URL",
    "WALLETSVC_TEST_NATS_URL",
    "WALLETSVC_REQUIRE_BROWSER",
    "WALLETSVC_CHROMIUM",
}

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
SEPARATORS = {"|", "||", "&&", ";", "(", "$("}
PLACEHOLDER = re.compile(r"^(<[^>]*>|\$.*|[A-Z][A-Za-z0-9_]*(\.[A-Za-z0-9]+)?)$")


@dataclass(frozen=True)
class Found:
    where: str
    text: str
    # Inline prose may name a command without its required arguments ("run
    # `walletsvc verify-pass` on it"); the command and its flags must still exist.
    mention: bool = False


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _blocks(path: Path) -> list[tuple[str, str, int]]:
    text = path.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), _line_of(text, m.start(2))) for m in FENCE.finditer(text)]


def _prose(path: Path) -> str:
    """The file with its fenced blocks blanked out (line numbers kept)."""
    text = path.read_text(encoding="utf-8")
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


# --- command lines ---------------------------------------------------------------------


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose: not a command line
        return []


def _invocations(line: str) -> list[list[str]]:
    """The argument lists of every `walletsvc` run on a shell line, after the program name.

    A run is `walletsvc` (any path to it, or `python -m walletsvc`) in command position:
    first on the line or after a pipe, `&&`, `;`, `$(`, after `VAR=value` assignments,
    or as the command given to `docker compose exec|run [options] SERVICE`.
    """
    tokens = _tokens(line)
    found: list[list[str]] = []
    start = True
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in SEPARATORS or token == "$":
            start = True
            i += 1
            continue
        if start and re.match(r"^[A-Z_][A-Z0-9_]*=", token):
            i += 1
            continue
        if start and Path(token).name in {"python", "python3"}:
            if tokens[i + 1 : i + 3] == ["-m", "walletsvc"]:
                i += 2
                token = "walletsvc"
        after_exec = (i >= 2 and tokens[i - 2] in {"exec", "run"}) or (
            i >= 3 and tokens[i - 3] == "run" and tokens[i - 2] == "--rm"
        )
        program = token == "walletsvc" or (start and token.endswith("/walletsvc"))
        # `docker run [options] walletsvc:TAG ARGS`: the image's entrypoint is walletsvc.
        image = (
            re.fullmatch(r"walletsvc:[\w.-]+", token) is not None
            and "run" in tokens[:i]
            and "--entrypoint" not in tokens[:i]
        )
        if ((start or after_exec) and program) or image:
            args = []
            for arg in tokens[i + 1 :]:
                if arg in SEPARATORS or arg in {">", ">>", "2>", "<"}:
                    break
                args.append(arg)
            if args or not image:  # a bare image runs its default command
                found.append(args)
        start = False
        i += 1
    return found


def _expand(args: list[str]) -> list[list[str]]:
    """Turn a usage line into concrete argument lists.

    `[...]` optional parts are all included; `{a,b}` (argparse's notation) gives one
    line per choice; placeholders (FILE, H, <serial>, $VAR) become a harmless value.
    """
    choices: list[list[str]] = []
    for raw in args:
        arg = raw.replace("[", "").replace("]", "").removesuffix("...").rstrip(",")
        if not arg:
            continue
        brace = re.fullmatch(r"\{([^{}]+)\}", arg)
        if brace:
            choices.append(brace.group(1).split(","))
        elif not arg.startswith("-") and PLACEHOLDER.match(arg):
            choices.append(["1"])
        else:
            choices.append([arg])
    return [list(combo) for combo in itertools.product(*choices)]


def _doc_commands() -> list[Found]:
    """Command lines in code blocks; inline `walletsvc ...` spans, marked as mentions."""
    found = []
    for path in DOCS:
        for lang, body, first in _blocks(path):
            if lang not in {"", "sh", "bash", "shell", "console"}:  # not toml, json, text
                continue
            joined = body.replace("\\\n", " ")
            for offset, line in enumerate(joined.splitlines()):
                line = line.removeprefix("$ ")
                for args in _invocations(line):
                    found.append(Found(f"{_rel(path)}:{first + offset}", shlex.join(args)))
        prose = _prose(path)
        for match in INLINE.finditer(prose):
            span = match.group(1).replace("\\|", "|")
            if re.match(r"^(\S*/)?walletsvc\s", span):
                for args in _invocations(span):
                    where = f"{_rel(path)}:{_line_of(prose, match.start())}"
                    found.append(Found(where, shlex.join(args), mention=True))
    return found


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _compose_commands() -> list[Found]:
    compose = _compose()
    found = []
    for name, service in compose["services"].items():
        if str(service.get("image", "")).startswith("walletsvc"):
            command = service.get("command")
            assert isinstance(command, list), f"compose service {name}: give command as a list"
            found.append(Found(f"docker/compose.yaml services.{name}", shlex.join(command)))
    return found


def parse_problem(args: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    """Run the real CLI parser on `args`; None when it accepts them, else argparse's words.

    `--config` names a missing file, so every command stops at loading settings
    (exit 2, "invalid settings") right after argparse accepted the line; `verify-pass`
    reads no settings and stops at the missing file instead.
    """
    argv = ["--config", MISSING_CONFIG]
    # The doc's own --config: keep the option (and where it stands), not the file.
    argv += [
        MISSING_CONFIG if index > 0 and args[index - 1] == "--config" else arg
        for index, arg in enumerate(args)
    ]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        if exc.code == 0:  # --help
            return None
        return err.strip().splitlines()[-1] if err.strip() else f"exit {exc.code}"
    err = capsys.readouterr().err
    if "verify-pass" in args:
        return None
    if code == 2 and "does not exist" in err:
        return None
    return f"unexpected: the command ran (exit {code}): {err.strip()[:200]}"


def test_every_documented_command_is_a_real_command(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _doc_commands() + _compose_commands()
    # The docs show dozens of command lines; finding few means the scanner broke.
    assert len(commands) >= 20, commands
    wrong = []
    for item in commands:
        for args in _expand(shlex.split(item.text)):
            problem = parse_problem(args, capsys)
            if item.mention and problem and "arguments are required" in problem:
                continue
            if problem is not None:
                wrong.append(f"{item.where}: walletsvc {shlex.join(args)}\n    {problem}")
    assert not wrong, "commands the CLI does not know:\n" + "\n".join(wrong)


def test_the_command_check_catches_made_up_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_problem(["serve", "--no-migrate"], capsys) is None
    assert parse_problem(["events", "replay", "--all", "--sink", "crm"], capsys) is None
    assert parse_problem(["serve", "--workers", "4"], capsys) is not None
    assert parse_problem(["backup"], capsys) is not None
    assert parse_problem(["events", "purge"], capsys) is not None
    assert parse_problem(["passes", "refresh"], capsys) is not None  # --program is required
    assert parse_problem(["serve", "--config", "x.toml"], capsys) is not None  # global option


def test_the_scanner_finds_commands_where_operators_write_them() -> None:
    line = "docker compose exec walletsvc walletsvc events status | head; walletsvc migrate"
    assert _invocations(line) == [["events", "status"], ["migrate"]]
    assert _invocations("WALLETSVC_MODE=production .venv/bin/walletsvc serve") == [["serve"]]
    assert _invocations("pg_dump -Fc -d walletsvc -f walletsvc.dump") == []
    assert _invocations("cat /etc/walletsvc/walletsvc.toml") == []
    assert _invocations("docker run --rm -v walletsvc-data:/var/lib/walletsvc img") == []
    assert _invocations("docker run -p 8080:8080 walletsvc:local migrate") == [["migrate"]]
    assert _invocations("docker build -t walletsvc:local .") == []
    assert _expand(["events", "{status,dead}", "[--sink", "S]"]) == [
        ["events", "status", "--sink", "1"],
        ["events", "dead", "--sink", "1"],
    ]


# --- settings ---------------------------------------------------------------------------


def _toml_blocks() -> list[tuple[str, str]]:
    return [
        (f"{_rel(path)}:{line}", body)
        for path in DOCS
        for lang, body, line in _blocks(path)
        if lang == "toml"
    ]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No WALLETSVC_ variable of the machine may fill in or override what a doc says."""
    for name in list(os.environ):
        if name.upper().startswith("WALLETSVC_"):
            monkeypatch.delenv(name)


def settings_problem(body: str, tmp_path: Path) -> str | None:
    """Load a TOML text as walletsvc would; None when the settings model accepts it."""
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        return f"not TOML: {exc}"
    file = tmp_path / "walletsvc.toml"
    file.write_text(body, encoding="utf-8")
    # The docs keep secrets in the environment, not in the file: supply them the
    # same way when the block does not, so production blocks are judged on the rest.
    fill = {
        name: "x" * 40
        for name in ("secret_key", "admin_api_key")
        if data.get("mode") == "production" and name not in data
    }
    try:
        load_settings(file, **fill)
    except ValidationError as exc:
        return str(exc)
    return None


def test_every_toml_block_is_valid_settings(tmp_path: Path, clean_environment: None) -> None:
    blocks = _toml_blocks()
    assert len(blocks) >= 4, blocks
    wrong = [
        f"{where}: {problem}"
        for where, body in blocks
        if (problem := settings_problem(body, tmp_path))
    ]
    assert not wrong, "TOML blocks the settings refuse:\n" + "\n".join(wrong)


def test_the_settings_check_catches_unknown_and_bad_keys(
    tmp_path: Path, clean_environment: None
) -> None:
    assert settings_problem('[events]\nrelay = "off"\n', tmp_path) is None
    assert settings_problem("workers = 4\n", tmp_path) is not None
    assert settings_problem('[events]\nrelay = "separate"\n', tmp_path) is not None
    assert settings_problem('mode = "production"\npublic_url = "http://x"\n', tmp_path) is not None


def test_a_misspelt_setting_inside_a_section_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    # A typo in a section used to be dropped silently, and the default used instead.
    assert settings_problem('[apple]\npass_cert = "x.pem"\n', tmp_path) is not None
    assert settings_problem("[apple.apns]\nkey_fil = 'AuthKey.p8'\n", tmp_path) is not None
    assert settings_problem('[events.nats]\nulr = "nats://x:4222"\n', tmp_path) is not None
    monkeypatch.setenv("WALLETSVC_APPLE__APNS__KEY_FIL", "AuthKey.p8")
    with pytest.raises(ValidationError, match="key_fil"):
        load_settings()


def _setting_exists(name: str) -> bool:
    parts = name.removeprefix("WALLETSVC_").lower().split("__")
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        if part == "" and index == len(parts) - 1:  # `WALLETSVC_GOOGLE__*`: a section
            return True
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif index != len(parts) - 1:
            return False
    return True


def _mentioned_variables() -> list[Found]:
    stream_name = NatsSinkSettings.model_fields["stream"].default  # a NATS stream, not a variable
    found = []
    files = [*DOCS, COMPOSE, ENV_EXAMPLE, ROOT / "docker" / "Dockerfile"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\bWALLETSVC_[A-Z0-9_]*[A-Z0-9_]", text):
            name = match.group(0)
            if name in HARNESS_VARIABLES or name == stream_name:
                continue
            found.append(Found(f"{_rel(path)}:{_line_of(text, match.start())}", name))
    return found


def test_every_walletsvc_variable_names_a_setting() -> None:
    mentioned = _mentioned_variables()
    assert len(mentioned) >= 40
    wrong = [f"{item.where}: {item.text}" for item in mentioned if not _setting_exists(item.text)]
    assert not wrong, "variables that set nothing:\n" + "\n".join(wrong)
    assert _setting_exists("WALLETSVC_APPLE__APNS__KEY_ID")
    assert not _setting_exists("WALLETSVC_APPLE__APNS_KEY_ID")
    assert not _setting_exists("WALLETSVC_EVENTS__RELAY__MODE")


def test_the_harness_variables_are_really_the_harness_s() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))
    sources += (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for name in HARNESS_VARIABLES:
        assert name in sources, f"{name} is exempted as a test variable but no test reads it"


# --- routes -----------------------------------------------------------------------------

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
PATH = re.compile(
    r"(?<![\w./-])(?:\b(?P<method>(?:GET|POST|PUT|PATCH|DELETE|HEAD)(?:/(?:GET|POST|PUT|PATCH|DELETE|HEAD))*)"
    r"\s+)?(?:\{?PUBLIC_URL\}?|\$\{?\w+\}?|https?://[\w.:-]+)?(?P<path>/(?:api/v1|webhooks)(?:/[\w{}<>$.\-]+)*/?(?:\.\.\.)?)"
)


def _segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/") if s]


def _is_parameter(segment: str) -> bool:
    return bool(re.fullmatch(r"\{\w+\}|<[^>]+>|\$\{?\w+\}?|[A-Z][A-Z0-9_]*", segment))


def route_for(method: str | None, path: str) -> bool:
    """Tell whether a route with this method (any, when None) matches a documented path."""
    wanted = _segments(path)
    for operation in router.operations:
        if method is not None and operation.method != method:
            continue
        have = _segments(operation.path)
        if len(have) == len(wanted) and all(
            h == w or _is_parameter(h) or _is_parameter(w)
            for h, w in zip(have, wanted, strict=True)
        ):
            return True
    return False


def _mentioned_paths() -> list[tuple[str, str | None, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in PATH.finditer(text):
            route = match.group("path")
            if route.endswith("...") or route.rstrip("/") in {"/api/v1", "/webhooks"}:
                continue  # a prefix: "everything under /api/v1"
            route = route.rstrip("/.")
            methods = (match.group("method") or "").split("/")
            where = f"{_rel(path)}:{_line_of(text, match.start())}"
            for method in methods:
                found.append((where, method or None, route))
    return found


def test_every_documented_api_path_is_a_route() -> None:
    mentioned = _mentioned_paths()
    assert len(mentioned) >= 30
    wrong = [
        f"{where}: {method or '(any method)'} {route}"
        for where, method, route in mentioned
        if not route_for(method, route)
    ]
    assert not wrong, "paths the app does not serve:\n" + "\n".join(wrong)


def test_the_route_check_catches_made_up_paths() -> None:
    assert route_for("POST", "/api/v1/stores/{store}/terminals/t1/secret")
    assert route_for(None, "/api/v1/passes/$SERIAL")
    assert route_for("POST", "/webhooks/pos/square/{terminal_id}")
    assert not route_for("GET", "/api/v1/stores")
    assert not route_for("DELETE", "/api/v1/stores/{id}")
    assert not route_for(None, "/api/v1/passes/{serial}/refresh")


# --- compose ----------------------------------------------------------------------------


def test_compose_uses_only_real_settings_and_declared_variables() -> None:
    compose = _compose()
    declared = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    text = COMPOSE.read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{(\w+)", text))
    assert interpolated <= declared, f"not in docker/.env.example: {interpolated - declared}"
    services = [
        s for s in compose["services"].values() if str(s.get("image", "")).startswith("walletsvc")
    ]
    assert services
    for service in services:
        for name in service.get("environment", {}):
            assert _setting_exists(name), f"compose sets {name}, which is no setting"


def test_compose_settings_start_in_production_mode(
    monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    """Each walletsvc service's environment, with .env.example filled in, is valid settings."""
    example = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            example[name.strip()] = value.strip() or "filled-in-by-the-operator-" + "x" * 20

    def interpolate(value: str) -> str:
        return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: example[m.group(1)], value)

    for name, service in _compose()["services"].items():
        if not str(service.get("image", "")).startswith("walletsvc"):
            continue
        for variable in [v for v in os.environ if v.startswith("WALLETSVC_")]:
            monkeypatch.delenv(variable)
        variables = {k: v for k, v in example.items() if k.startswith("WALLETSVC_")}
        variables.update({k: interpolate(str(v)) for k, v in service["environment"].items()})
        for variable, value in variables.items():
            monkeypatch.setenv(variable, value)
        settings = load_settings()
        assert settings.mode == "production", name
        assert settings.google.enabled is False, name
        assert settings.events.nats.url == "nats://nats:4222", name
        assert settings.database_url.startswith("postgresql+asyncpg://"), name
    assert _compose()["services"]["walletsvc"]["environment"]["WALLETSVC_EVENTS__RELAY"] == "off"
