"""Phase files (docs/phase-file.md): what a good file becomes, the one-line error of a bad one."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

from core.errors import PhaseFileError
from runner.phase import (
    Budgets,
    DoneChecks,
    FrontMatterCheck,
    OutputOptions,
    Overrides,
    Permissions,
    PhaseSpec,
    ServerOptions,
    Timeouts,
    load_phase,
    parse_duration,
    parse_phase,
    render_output_path,
)
from runner.phase.derive import termination_policy

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2025, 1, 2, 3, 4, 5)
STAMP = "20250102-030405"
MINIMAL = "name: demo\nprompt: Say hi.\n"
DEFAULT_FEEDBACK = (
    "Rejected by the runner's phase policy (permissions.default: reject). "
    "Do not retry this; continue without it."
)

FULL = """\
name: write-notes
label: Write the notes
prompt_file: prompts/notes.md
vars:
  TOPIC: SSE
  COUNT: 3
  STRICT: true
agent: build
model: mock/scripted-model
variant: high
directory: project
thinking: true
permissions:
  default: allow
  allow: [read]
  deny: [bash, webfetch]
  feedback: Not in this phase.
done:
  artifacts: ["notes/*.md"]
  frontmatter:
    files: ["notes/*.md"]
    required: [title, date]
  command: make check
budgets:
  resumes: 5
  repairs: 0
  provider_retries: 2
timeouts:
  phase: 1h30m
  stall: 90
  start: 500ms
server:
  attach: http://127.0.0.1:4096/
  opencode: bin/opencode
opencode_config:
  provider:
    mock:
      options: {baseURL: "http://127.0.0.1:9999/v1"}
output:
  transcript: "logs/{name}.jsonl"
  result: "/tmp/results/{name}-{time}.json"
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A fresh working folder that is also the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, text: str, name: str = "phase.yaml") -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return name


def load(name: str = "phase.yaml", **kwargs) -> PhaseSpec:
    return load_phase(name, environ={"HOME": "/home/user"}, now=NOW, **kwargs)


def error_of(name: str = "phase.yaml", **kwargs) -> str:
    with pytest.raises(PhaseFileError) as caught:
        load(name, **kwargs)
    return str(caught.value)


# --- good files ------------------------------------------------------------------------------


def test_full_file_parses_to_the_expected_spec(folder):
    (folder / "project").mkdir()
    (folder / "bin").mkdir()
    (folder / "bin" / "opencode").write_text("#!/bin/sh\n")
    write(folder, "Write ${COUNT} notes on ${TOPIC} (strict: ${STRICT}).\n", "prompts/notes.md")
    write(folder, FULL)

    spec = load()

    assert spec == PhaseSpec(
        source="phase.yaml",
        name="write-notes",
        label="Write the notes",
        prompt="Write 3 notes on SSE (strict: true).\n",
        prompt_file=folder / "prompts" / "notes.md",
        vars={"TOPIC": "SSE", "COUNT": "3", "STRICT": "true"},
        agent="build",
        model="mock/scripted-model",
        variant="high",
        directory=folder / "project",
        thinking=True,
        permissions=Permissions(
            default="allow",
            allow=("read",),
            deny=("bash", "webfetch"),
            feedback="Not in this phase.",
        ),
        done=DoneChecks(
            artifacts=("notes/*.md",),
            frontmatter=(FrontMatterCheck(globs=("notes/*.md",), required=("title", "date")),),
            command="make check",
        ),
        budgets=Budgets(resumes=5, repairs=0, provider_retries=2),
        timeouts=Timeouts(phase=5400.0, stall=90.0, start=0.5),
        server=ServerOptions(attach="http://127.0.0.1:4096", opencode=str(folder / "bin/opencode")),
        opencode_config={
            "provider": {"mock": {"options": {"baseURL": "http://127.0.0.1:9999/v1"}}}
        },
        output=OutputOptions(
            transcript=folder / "logs" / "write-notes.jsonl",
            result=Path(f"/tmp/results/write-notes-{STAMP}.json"),
            earlier="/tmp/results/write-notes-*.json",  # every run's result, for --skip-done
        ),
    )
    assert spec.model_ref == ("mock", "scripted-model")
    assert spec.config_content is not None
    assert '"baseURL": "http://127.0.0.1:9999/v1"' in spec.config_content


def test_minimal_file_gets_every_default(folder):
    write(folder, MINIMAL)

    spec = load()

    assert spec == PhaseSpec(
        source="phase.yaml",
        name="demo",
        label="demo",
        prompt="Say hi.",
        directory=folder,
        output=OutputOptions(
            transcript=folder / "runs" / f"demo-{STAMP}.jsonl",
            result=folder / "runs" / f"demo-{STAMP}.result.json",
            earlier=str(folder / "runs" / "demo-*.result.json"),
        ),
    )
    assert spec.permissions == Permissions(
        default="reject", allow=(), deny=(), feedback=DEFAULT_FEEDBACK
    )
    assert spec.budgets == Budgets(resumes=3, repairs=2, provider_retries=8)
    assert (spec.budgets.cost_usd, spec.budgets.tokens, spec.budgets.steps) == (None, None, None)
    assert (spec.budgets.repeats, spec.budgets.compactions) == (5, None)


def test_spend_and_loop_budgets(folder):
    budgets = "budgets: {cost_usd: 2, tokens: 500000, steps: 40, repeats: 3, compactions: 0}\n"
    spec = load(write(folder, MINIMAL + budgets))
    assert spec.budgets == Budgets(cost_usd=2.0, tokens=500_000, steps=40, repeats=3, compactions=0)
    limits = termination_policy(spec, "ses_1", 0.0).limits.guards
    assert (limits.cost_usd, limits.tokens, limits.steps) == (2.0, 500_000, 40)
    assert (limits.repeats, limits.compactions) == (3, 0)
    assert spec.timeouts == Timeouts(phase=3600.0, stall=600.0, start=30.0)
    assert (spec.agent, spec.model, spec.variant, spec.thinking) == (None, None, None, False)
    assert spec.done == DoneChecks(artifacts=(), frontmatter=(), command=None)
    assert spec.server == ServerOptions(attach=None, opencode=None)
    assert (spec.opencode_config, spec.config_content, spec.model_ref) == (None, None, None)


def test_spec_is_frozen(folder):
    write(folder, MINIMAL)
    spec = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.vars["X"] = "y"  # type: ignore[index]


def test_relative_paths_resolve_against_the_phase_files_folder(folder):
    (folder / "work").mkdir()
    write(folder, "Do it.", "phases/p.md")
    write(
        folder,
        "name: rel\nprompt_file: p.md\ndirectory: ../work\noutput: {result: 'out/{name}.json'}\n",
        "phases/phase.yaml",
    )

    spec = load("phases/phase.yaml")

    assert spec.source == "phases/phase.yaml"
    assert spec.prompt_file == folder / "phases" / "p.md"
    assert spec.directory == folder / "work"
    assert spec.output.transcript == folder / "phases" / "runs" / f"rel-{STAMP}.jsonl"
    assert spec.output.result == folder / "phases" / "out" / "rel.json"


def test_tilde_expands_from_the_given_environment(folder):
    home = folder / "home"
    (home / "proj").mkdir(parents=True)
    write(folder, MINIMAL + "directory: ~/proj\n")
    spec = load_phase("phase.yaml", environ={"HOME": str(home)}, now=NOW)
    assert spec.directory == home / "proj"


def test_binary_name_without_slash_is_left_for_path(folder):
    write(folder, MINIMAL + "server: {opencode: opencode}\n")
    assert load().server.opencode == "opencode"


@pytest.mark.parametrize(
    ("prompt", "variables", "expected"),
    [
        ("Fix ${FILE}.", {"FILE": "a.py"}, "Fix a.py."),
        ("${A}${A}-${B}", {"A": "x", "B": 2}, "xx-2"),
        ("Write $${NAME} literally", {}, "Write ${NAME} literally"),
        ("Keep $HOME, $(date) and ${not a var}", {}, "Keep $HOME, $(date) and ${not a var}"),
        ("Run ${CMD}", {"CMD": "$(rm -rf /) `id` ${X}"}, "Run $(rm -rf /) `id` ${X}"),
        ("ok=${OK} pi=${PI}", {"OK": False, "PI": 3.5}, "ok=false pi=3.5"),
    ],
)
def test_vars_are_substituted_as_plain_text(prompt, variables, expected):
    data = {"name": "v", "prompt": prompt, "vars": variables}
    spec = parse_phase(data, source="inline.yaml", base_dir=Path.cwd(), now=NOW)
    assert spec.prompt == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("1.10", "1.10"),
        ("0x1F", "0x1F"),
        ("1e3", "1e3"),
        ("007", "007"),
        ("1_000", "1_000"),
        ("-0.50", "-0.50"),
        (".inf", ".inf"),
        ("'1.10'", "1.10"),  # quoted: a string already
        ("true", "true"),
        ("yes", "true"),  # YAML 1.1's boolean, named the one way
        ("3.14159265358979323846", "3.14159265358979323846"),
    ],
)
def test_vars_from_yaml_text_are_substituted_as_written(folder, written, expected):
    write(folder, f"name: v\nprompt: Release ${{V}}.\nvars:\n  V: {written}\n")
    assert load().prompt == f"Release {expected}."


def test_a_var_override_is_text_and_other_numbers_stay_numbers(folder):
    write(folder, "name: v\nprompt: ${A} ${B}\nvars: {A: 1.10, B: 2.50}\nbudgets: {resumes: 3}\n")
    spec = load(overrides=Overrides(vars=("B=2.5",)))
    assert spec.prompt == "1.10 2.5"
    assert spec.budgets.resumes == 3


def test_prompt_file_text_is_the_prompt_with_vars(folder):
    write(folder, "Line one about ${TOPIC}.\nLine two.\n", "prompt.md")
    write(folder, "name: pf\nprompt_file: prompt.md\nvars: {TOPIC: tracking}\n")
    spec = load()
    assert spec.prompt == "Line one about tracking.\nLine two.\n"
    assert spec.prompt_file == folder / "prompt.md"


def test_frontmatter_accepts_a_list_of_checks(folder):
    body = (
        "done:\n  frontmatter:\n"
        "    - {files: [a.md]}\n"
        "    - {files: [b/*.md, c.md], required: [x]}\n"
    )
    write(folder, MINIMAL + body)
    assert load().done.frontmatter == (
        FrontMatterCheck(globs=("a.md",), required=()),
        FrontMatterCheck(globs=("b/*.md", "c.md"), required=("x",)),
    )


def test_permission_feedback_null_rejects_silently_and_allow_names_deny(folder):
    write(folder, MINIMAL + "permissions: {feedback: null}\n")
    assert load().permissions.feedback is None
    write(folder, MINIMAL + "permissions: {default: allow, deny: [bash]}\n")
    assert "(permissions.deny)" in load().permissions.feedback


def test_opencode_config_may_be_a_json_string(folder):
    write(folder, MINIMAL + 'opencode_config: \'{"model": "mock/m"}\'\n')
    spec = load()
    assert spec.opencode_config == {"model": "mock/m"}
    assert spec.config_content == '{"model": "mock/m"}'


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:4096", "http://127.0.0.1:4096"),
        ("http://localhost:4096/", "http://localhost:4096"),
        ("http://[::1]:4096", "http://[::1]:4096"),
        ("http://127.1.2.3", "http://127.1.2.3"),
    ],
)
def test_loopback_attach_urls_are_accepted(folder, url, expected):
    write(folder, MINIMAL + f"server: {{attach: '{url}'}}\n")
    assert load().server.attach == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2m30s", 150.0),
        ("1.5h", 5400.0),
        ("1h0m5s250ms", 3605.25),
        ("45", 45.0),
        (" 30s ", 30.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "s", "1d", "10 m", "30m1h", "-5s", "inf", "nan", "1h1h", "5sec", "1.s", "1e3"]
)
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90.0), (0.25, 0.25), ("10m", 600.0), ("1h30m", 5400.0)]
)
def test_timeouts_take_numbers_or_strings(folder, value, seconds):
    write(folder, MINIMAL + f"timeouts: {{stall: {value}}}\n")
    assert load().timeouts.stall == seconds


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("runs/{name}-{time}.jsonl", f"runs/demo-{STAMP}.jsonl"),
        ("{time}/{name}/{name}.json", f"{STAMP}/demo/demo.json"),
        ("fixed.json", "fixed.json"),
        ("braces-{{name}}.txt", "braces-{name}.txt"),
    ],
)
def test_render_output_path(template, expected):
    assert render_output_path(template, "demo", NOW) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("runs/{date}.jsonl", "unknown placeholder {date}"),
        ("runs/{}.jsonl", "unknown placeholder {}"),
        ("runs/{name!r}.jsonl", "unknown placeholder {name!r}"),
        ("runs/{name.jsonl", "bad template"),
    ],
)
def test_render_output_path_rejects(template, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        render_output_path(template, "demo", NOW)


# --- overrides -------------------------------------------------------------------------------


def test_overrides_lay_over_the_file(folder):
    body = "name: demo\nprompt: ${GREETING} ${WHO}\nvars: {GREETING: Hi, WHO: x}\nmodel: a/b\n"
    write(folder, body)
    flags = Overrides(
        model="mock/other",
        agent="plan",
        vars=("WHO=world", "EXTRA=a=b"),
        thinking=True,
        attach="http://localhost:5000",
        transcript="out/{name}-{time}.jsonl",
        result="/tmp/r/{name}.json",
        recycle_after=5,
        recycle_rss_mib=512.0,
    )

    spec = load(overrides=flags)
    assert (spec.server.recycle_after, spec.server.recycle_rss_mib) == (5, 512.0)

    assert spec.prompt == "Hi world"
    assert dict(spec.vars) == {"GREETING": "Hi", "WHO": "world", "EXTRA": "a=b"}
    assert (spec.model, spec.agent, spec.thinking) == ("mock/other", "plan", True)
    assert spec.server.attach == "http://localhost:5000"
    assert spec.output.transcript == folder / "out" / f"demo-{STAMP}.jsonl"
    assert spec.output.result == Path("/tmp/r/demo.json")


def test_transcript_override_is_relative_to_the_working_directory(folder):
    write(folder, MINIMAL, "sub/phase.yaml")
    spec = load("sub/phase.yaml", overrides=Overrides(transcript="t.jsonl"))
    assert spec.output.transcript == folder / "t.jsonl"
    assert spec.output.result == folder / "sub" / "runs" / f"demo-{STAMP}.result.json"


def test_var_override_supplies_a_missing_variable(folder):
    write(folder, "name: demo\nprompt: Fix ${TARGET}\n")
    assert load(overrides=Overrides(vars=("TARGET=main.py",))).prompt == "Fix main.py"


def test_thinking_false_override_turns_it_off(folder):
    write(folder, MINIMAL + "thinking: true\n")
    assert load(overrides=Overrides(thinking=False)).thinking is False


# --- bad files: one line naming the file, the key path and the problem ------------------------

DURATION = "expected a duration like 90s, 10m, 1h30m or a number of seconds"
VAR_RULE = "invalid variable name (letters, digits and '_', not starting with a digit)"

# One case each: an id, the phase-file text, the exact message.
BAD_FILES = [
    (
        "unknown-top-key",
        "name: x\npromt: hi\n",
        "phase.yaml: promt: unknown key (did you mean 'prompt'?)",
    ),
    (
        "nested-key-at-top",
        MINIMAL + "resumes: 2\n",
        "phase.yaml: resumes: unknown key (did you mean 'budgets.resumes'?)",
    ),
    (
        "unknown-nested-key",
        MINIMAL + "budgets: {resume: 3}\n",
        "phase.yaml: budgets.resume: unknown key (did you mean 'resumes'?)",
    ),
    (
        "unknown-nested-no-guess",
        MINIMAL + "timeouts: {forever: 1}\n",
        "phase.yaml: timeouts.forever: unknown key"
        " (expected one of: phase, stall, start, outage, silent)",
    ),
    ("missing-name", "prompt: hi\n", "phase.yaml: name: missing required key"),
    (
        "secrets-not-a-name",
        MINIMAL + "secrets: [API_KEY, my var]\n",
        "phase.yaml: secrets[1]: expected an environment variable name, got 'my var'",
    ),
    (
        "secrets-not-a-list",
        MINIMAL + "secrets: API_KEY\n",
        "phase.yaml: secrets: expected a list of strings, got 'API_KEY'",
    ),
    (
        "bad-name",
        "name: my phase\nprompt: hi\n",
        "phase.yaml: name: expected an identifier (letters, digits, '-', '_', '.'), got 'my phase'",
    ),
    ("label-number", MINIMAL + "label: 7\n", "phase.yaml: label: expected a string, got 7"),
    (
        "budgets-not-mapping",
        MINIMAL + "budgets: 3\n",
        "phase.yaml: budgets: expected a mapping, got 3",
    ),
    (
        "permissions-list",
        MINIMAL + "permissions: [bash]\n",
        "phase.yaml: permissions: expected a mapping, got a list",
    ),
    (
        "done-string",
        MINIMAL + "done: make test\n",
        "phase.yaml: done: expected a mapping, got 'make test'",
    ),
    ("server-list", MINIMAL + "server: []\n", "phase.yaml: server: expected a mapping, got a list"),
    ("output-number", MINIMAL + "output: 1\n", "phase.yaml: output: expected a mapping, got 1"),
    (
        "budget-word",
        MINIMAL + "budgets: {resumes: three}\n",
        "phase.yaml: budgets.resumes: expected a non-negative integer, got 'three'",
    ),
    (
        "budget-negative",
        MINIMAL + "budgets: {repairs: -1}\n",
        "phase.yaml: budgets.repairs: expected a non-negative integer, got -1",
    ),
    (
        "budget-bool",
        MINIMAL + "budgets: {provider_retries: true}\n",
        "phase.yaml: budgets.provider_retries: expected a non-negative integer, got true",
    ),
    (
        "budget-float",
        MINIMAL + "budgets: {resumes: 1.5}\n",
        "phase.yaml: budgets.resumes: expected a non-negative integer, got 1.5",
    ),
    (
        "budget-null",
        MINIMAL + "budgets: {resumes: null}\n",
        "phase.yaml: budgets.resumes: expected a non-negative integer, got null",
    ),
    (
        "cost-word",
        MINIMAL + "budgets: {cost_usd: lots}\n",
        "phase.yaml: budgets.cost_usd: expected a non-negative number, got 'lots'",
    ),
    (
        "cost-negative",
        MINIMAL + "budgets: {cost_usd: -0.5}\n",
        "phase.yaml: budgets.cost_usd: expected a non-negative number, got -0.5",
    ),
    (
        "repeats-one",
        MINIMAL + "budgets: {repeats: 1}\n",
        "phase.yaml: budgets.repeats: expected an integer of at least 2, got 1",
    ),
    (
        "tokens-zero",
        MINIMAL + "budgets: {tokens: 0}\n",
        "phase.yaml: budgets.tokens: expected an integer of at least 1, got 0",
    ),
    (
        "duration-word",
        MINIMAL + "timeouts: {phase: soon}\n",
        f"phase.yaml: timeouts.phase: {DURATION}, got 'soon'",
    ),
    (
        "duration-unit",
        MINIMAL + "timeouts: {phase: 2d}\n",
        f"phase.yaml: timeouts.phase: {DURATION}, got '2d'",
    ),
    (
        "duration-zero",
        MINIMAL + "timeouts: {stall: 0}\n",
        "phase.yaml: timeouts.stall: must be greater than zero, got 0",
    ),
    (
        "duration-zero-string",
        MINIMAL + "timeouts: {start: 0s}\n",
        "phase.yaml: timeouts.start: must be greater than zero, got '0s'",
    ),
    (
        "duration-negative",
        MINIMAL + "timeouts: {start: -5}\n",
        "phase.yaml: timeouts.start: must be greater than zero, got -5",
    ),
    (
        "duration-infinite",
        MINIMAL + "timeouts: {phase: .inf}\n",
        f"phase.yaml: timeouts.phase: {DURATION}, got inf",
    ),
    (
        "duration-list",
        MINIMAL + "timeouts: {phase: [1]}\n",
        f"phase.yaml: timeouts.phase: {DURATION}, got a list",
    ),
    (
        "bad-model",
        MINIMAL + "model: gpt4\n",
        "phase.yaml: model: expected provider/model, got 'gpt4'",
    ),
    (
        "model-half",
        MINIMAL + "model: openai/\n",
        "phase.yaml: model: expected provider/model, got 'openai/'",
    ),
    ("agent-empty", MINIMAL + "agent: ''\n", "phase.yaml: agent: must not be empty"),
    (
        "thinking-string",
        MINIMAL + "thinking: 'on please'\n",
        "phase.yaml: thinking: expected true or false, got 'on please'",
    ),
    (
        "prompt-and-file",
        "name: x\nprompt: a\nprompt_file: p.md\n",
        "phase.yaml: prompt: give either prompt or prompt_file, not both",
    ),
    (
        "no-prompt",
        "name: x\n",
        "phase.yaml: prompt: missing required key (give prompt or prompt_file)",
    ),
    (
        "prompt-file-missing",
        "name: x\nprompt_file: missing.md\n",
        "phase.yaml: prompt_file: no such file: {dir}/missing.md",
    ),
    ("prompt-empty", "name: x\nprompt: '   '\n", "phase.yaml: prompt: must not be empty"),
    ("prompt-list", "name: x\nprompt: [a]\n", "phase.yaml: prompt: expected a string, got a list"),
    (
        "unknown-var",
        "name: x\nprompt: Fix ${TARGET}\n",
        "phase.yaml: prompt: unknown variable ${TARGET} (set it in vars or --var TARGET=...)",
    ),
    (
        "unknown-var-guess",
        "name: x\nprompt: Fix ${TARGET}\nvars: {TARGTE: a}\n",
        "phase.yaml: prompt: unknown variable ${TARGET} (did you mean ${TARGTE}?)",
    ),
    (
        "prompt-empty-after-vars",
        "name: x\nprompt: ${E}\nvars: {E: ''}\n",
        "phase.yaml: prompt: the prompt is empty once vars are substituted",
    ),
    (
        "vars-list",
        MINIMAL + "vars: [A]\n",
        "phase.yaml: vars: expected a mapping of names to values, got a list",
    ),
    (
        "vars-value-list",
        MINIMAL + "vars: {A: [1]}\n",
        "phase.yaml: vars.A: expected a string, number or boolean, got a list",
    ),
    ("vars-bad-name", MINIMAL + "vars: {1x: a}\n", f"phase.yaml: vars.1x: {VAR_RULE}"),
    (
        "attach-remote",
        MINIMAL + "server: {attach: 'http://10.0.0.5:4096'}\n",
        "phase.yaml: server.attach: '10.0.0.5' is not a loopback address (loopback only)",
    ),
    (
        "attach-hostname",
        MINIMAL + "server: {attach: 'http://example.com'}\n",
        "phase.yaml: server.attach: 'example.com' is not a loopback address (loopback only)",
    ),
    (
        "attach-https",
        MINIMAL + "server: {attach: 'https://127.0.0.1:1'}\n",
        "phase.yaml: server.attach: expected an http:// URL such as http://127.0.0.1:4096, "
        "got 'https://127.0.0.1:1'",
    ),
    (
        "attach-credentials",
        MINIMAL + "server: {attach: 'http://u:pw@127.0.0.1:1'}\n",
        "phase.yaml: server.attach: credentials do not belong in the URL",
    ),
    (
        "attach-path",
        MINIMAL + "server: {attach: 'http://127.0.0.1:1/api'}\n",
        "phase.yaml: server.attach: expected a base URL with no path, query or fragment, "
        "got 'http://127.0.0.1:1/api'",
    ),
    (
        "attach-bad-port",
        MINIMAL + "server: {attach: 'http://127.0.0.1:99999'}\n",
        "phase.yaml: server.attach: bad port in 'http://127.0.0.1:99999'",
    ),
    (
        "opencode-missing",
        MINIMAL + "server: {opencode: ./bin/opencode}\n",
        "phase.yaml: server.opencode: no such file: {dir}/bin/opencode",
    ),
    (
        "permission-default",
        MINIMAL + "permissions: {default: deny}\n",
        "phase.yaml: permissions.default: expected 'reject' or 'allow', got 'deny'",
    ),
    (
        "allow-not-list",
        MINIMAL + "permissions: {allow: bash}\n",
        "phase.yaml: permissions.allow: expected a list of strings, got 'bash'",
    ),
    (
        "deny-item",
        MINIMAL + "permissions: {deny: [bash, 3]}\n",
        "phase.yaml: permissions.deny[1]: expected a string, got 3",
    ),
    (
        "allow-and-deny",
        MINIMAL + "permissions: {allow: [bash, edit], deny: [edit]}\n",
        "phase.yaml: permissions.deny: 'edit' is also in permissions.allow",
    ),
    (
        "feedback-number",
        MINIMAL + "permissions: {feedback: 3}\n",
        "phase.yaml: permissions.feedback: expected a string, got 3",
    ),
    (
        "artifacts-string",
        MINIMAL + "done: {artifacts: '*.md'}\n",
        "phase.yaml: done.artifacts: expected a list of strings, got '*.md'",
    ),
    (
        "frontmatter-no-files",
        MINIMAL + "done: {frontmatter: {required: [title]}}\n",
        "phase.yaml: done.frontmatter.files: missing required key",
    ),
    (
        "frontmatter-no-globs",
        MINIMAL + "done: {frontmatter: {files: []}}\n",
        "phase.yaml: done.frontmatter.files: expected at least one glob",
    ),
    (
        "frontmatter-item",
        MINIMAL + "done: {frontmatter: [{files: [a]}, {files: x}]}\n",
        "phase.yaml: done.frontmatter[1].files: expected a list of strings, got 'x'",
    ),
    (
        "frontmatter-key",
        MINIMAL + "done: {frontmatter: {files: [a], require: [t]}}\n",
        "phase.yaml: done.frontmatter.require: unknown key (did you mean 'required'?)",
    ),
    (
        "frontmatter-string",
        MINIMAL + "done: {frontmatter: a.md}\n",
        "phase.yaml: done.frontmatter: expected a mapping {files, required} or a list of them, "
        "got 'a.md'",
    ),
    (
        "command-number",
        MINIMAL + "done: {command: 5}\n",
        "phase.yaml: done.command: expected a string, got 5",
    ),
    (
        "config-bad-json",
        MINIMAL + "opencode_config: '{nope'\n",
        "phase.yaml: opencode_config: invalid JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)",
    ),
    (
        "config-list",
        MINIMAL + "opencode_config: [1]\n",
        "phase.yaml: opencode_config: expected a mapping (or a JSON object in a string), "
        "got a list",
    ),
    (
        "config-date",
        MINIMAL + "opencode_config: {when: 2025-01-01}\n",
        "phase.yaml: opencode_config: not representable as JSON: "
        "Object of type date is not JSON serializable",
    ),
    (
        "directory-missing",
        MINIMAL + "directory: nowhere\n",
        "phase.yaml: directory: no such directory: {dir}/nowhere",
    ),
    (
        "directory-control-char",
        MINIMAL + 'directory: "a\\nb"\n',
        "phase.yaml: directory: expected a path, got 'a\\nb'",
    ),
    (
        "directory-is-file",
        MINIMAL + "directory: phase.yaml\n",
        "phase.yaml: directory: not a directory: {dir}/phase.yaml",
    ),
    (
        "output-placeholder",
        MINIMAL + "output: {transcript: 'runs/{date}.jsonl'}\n",
        "phase.yaml: output.transcript: unknown placeholder {date} in 'runs/{date}.jsonl' "
        "(use {name} and {time})",
    ),
    (
        "output-key",
        MINIMAL + "output: {transcripts: a}\n",
        "phase.yaml: output.transcripts: unknown key (did you mean 'transcript'?)",
    ),
    (
        "yaml-syntax",
        "name: x\n  prompt: a\n",
        "phase.yaml: line 2, column 9: invalid YAML: mapping values are not allowed here",
    ),
    (
        "yaml-unclosed",
        "name: x\nprompt: [a\n",
        "phase.yaml: line 3, column 1: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)",
    ),
    (
        "yaml-duplicate",
        "name: x\nprompt: a\nname: y\n",
        "phase.yaml: line 3, column 1: invalid YAML: found duplicate key 'name'",
    ),
    (
        "yaml-tag",
        "name: !!python/name:os.system x\nprompt: a\n",
        "phase.yaml: line 1, column 7: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/name:os.system'",
    ),
    ("empty-file", "", "phase.yaml: the file is empty (a phase needs at least name and prompt)"),
    (
        "comments-only",
        "# nothing\n",
        "phase.yaml: the file is empty (a phase needs at least name and prompt)",
    ),
    (
        "top-level-list",
        "- name: x\n",
        "phase.yaml: expected a mapping at the top level, got a list",
    ),
    (
        "top-level-string",
        "just text\n",
        "phase.yaml: expected a mapping at the top level, got 'just text'",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES]
)
def test_bad_file_gives_one_exact_line(folder, body, expected):
    write(folder, body)
    message = error_of()
    assert message == expected.replace("{dir}", str(folder))
    assert "\n" not in message


def test_prompt_file_empty(folder):
    write(folder, "\n\n", "p.md")
    write(folder, "name: x\nprompt_file: p.md\n")
    assert error_of() == f"phase.yaml: prompt_file: {folder / 'p.md'} is empty"


def test_missing_phase_file(folder):
    assert error_of("nope.yaml") == "nope.yaml: cannot read file: No such file or directory"


def test_phase_file_that_is_a_directory(folder):
    (folder / "dir.yaml").mkdir()
    assert error_of("dir.yaml") == "dir.yaml: cannot read file: Is a directory"


def test_error_names_the_file_as_given(folder):
    write(folder, "name: x\nprompt: a\nbudgets: {resumes: three}\n", "phases/one.yaml")
    expected = "phases/one.yaml: budgets.resumes: expected a non-negative integer, got 'three'"
    assert error_of("phases/one.yaml") == expected


def test_non_utf8_file(folder):
    (folder / "phase.yaml").write_bytes(b"name: x\nprompt: \xff\n")
    assert error_of() == "phase.yaml: cannot read file: not UTF-8 text"


def test_control_character_names_the_line(folder):
    write(folder, "name: x\nprompt: 'a\x01'\n")
    assert error_of() == (
        "phase.yaml: line 2: invalid YAML: unacceptable character #x0001: "
        "special characters are not allowed"
    )


BAD_FLAGS = [
    ("var-no-equals", Overrides(vars=("x",)), "--var: expected K=V, got 'x'"),
    ("var-bad-name", Overrides(vars=("1x=y",)), f"--var: {VAR_RULE}, got '1x=y'"),
    ("var-empty-name", Overrides(vars=("=y",)), f"--var: {VAR_RULE}, got '=y'"),
    ("model", Overrides(model="gpt4"), "--model: expected provider/model, got 'gpt4'"),
    ("agent", Overrides(agent=" "), "--agent: must not be empty"),
    (
        "attach",
        Overrides(attach="http://192.168.1.2:4096"),
        "--attach: '192.168.1.2' is not a loopback address (loopback only)",
    ),
    (
        "transcript",
        Overrides(transcript="t-{when}.jsonl"),
        "--transcript: unknown placeholder {when} in 't-{when}.jsonl' (use {name} and {time})",
    ),
    ("result", Overrides(result=""), "--result: must not be empty"),
    (
        "recycle_after",
        Overrides(recycle_after=0),
        "--recycle-after: expected an integer of at least 1, got 0",
    ),
    # A caller passing a non-bool is a bug, but it is still reported, not silently coerced.
    ("thinking", Overrides(thinking="yes"), "--thinking: expected true or false, got 'yes'"),
]


@pytest.mark.parametrize(
    ("flags", "expected"), [case[1:] for case in BAD_FLAGS], ids=[case[0] for case in BAD_FLAGS]
)
def test_bad_flag_names_the_flag(folder, flags, expected):
    write(folder, MINIMAL)
    assert error_of(overrides=flags) == expected


# --- the reference page stays true ------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "phase-file.md"


def test_complete_example_in_the_docs_loads(folder):
    page = DOCS.read_text()
    example = page.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (folder / "project").mkdir()
    write(folder, "Draft notes for ${VERSION} since ${SINCE}.\n", "prompts/notes.md")
    write(folder, example)

    spec = load()

    assert spec.prompt == "Draft notes for 1.4.0 since v1.3.0.\n"
    assert spec.permissions.allow == ("edit", "read")
    assert spec.done.frontmatter == (
        FrontMatterCheck(globs=("notes/release-*.md",), required=("title", "version")),
    )
    assert spec.timeouts == Timeouts(phase=1800.0, stall=300.0, start=30.0)


def test_error_lines_in_the_docs_are_real(folder):
    page = DOCS.read_text()
    documented = {line for line in page.splitlines() if line.startswith("phase.yaml: ")}
    real = {case[2].replace("{dir}", "/home/me/work") for case in BAD_FILES}
    real.add("phase.yaml: cannot read file: No such file or directory")
    assert documented - real == set()
    flags = {line for line in page.splitlines() if line.startswith("--") and ": " in line}
    assert flags
    assert flags - {case[2] for case in BAD_FLAGS} == set()


def test_isolate_gives_the_server_a_data_folder_beside_the_transcript(folder):
    from actors.process import server_env
    from runner.servers.keys import server_key, server_spec

    plain = load(write(folder, MINIMAL))
    isolated = load(write(folder, MINIMAL + "server: {isolate: true}\n"))
    flagged = load(write(folder, MINIMAL), overrides=Overrides(isolate=True))
    assert (plain.server.isolate, isolated.server.isolate, flagged.server.isolate) == (
        False,
        True,
        True,
    )
    assert server_key(plain) != server_key(isolated)
    spec = server_spec(isolated, {})
    assert spec.data_dir == str(isolated.output.transcript).removesuffix(".jsonl") + (
        ".opencode-data"
    )
    assert server_spec(plain, {}).data_dir is None
    env = server_env(spec, "pw")
    assert env["XDG_DATA_HOME"] == spec.data_dir
    assert env["XDG_STATE_HOME"].startswith(spec.data_dir)


@pytest.mark.parametrize("value", ["2", "-1", "true", "yes-please"])
def test_server_spare_is_zero_or_one(folder, value):
    with pytest.raises(PhaseFileError, match=r"server\.spare: expected 0 or 1"):
        load(write(folder, MINIMAL + f"server: {{spare: {value}}}\n"))
    assert load(write(folder, MINIMAL + "server: {spare: 0}\n")).server.spare == 0
    assert load(write(folder, MINIMAL)).server.spare == 1
