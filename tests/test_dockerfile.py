"""The image is built and run the way CI tests the artifact (tests/artifact_steps.py).

No Docker engine here, so the Dockerfile is parsed: a build stage that runs BUILD, a final stage
that installs only the wheel with INSTALL, runs SERVE as a non-root user, and checks /healthz on
the port the bot listens on in both Slack modes.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from tests.artifact_steps import BUILD, DEFAULT_PORT, HEALTH_PATH, INSTALL, ROOT, SERVE


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.steps if i == instruction]


def parse(text: str) -> list[Stage]:
    """Instructions grouped by FROM, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            stages[-1].steps.append((instruction, rest))
    return stages


def commands(run_args: str) -> list[list[str]]:
    """A RUN line's shell commands, split on && and tokenised."""
    return [shlex.split(part) for part in run_args.split("&&")]


def starts_with(argv: list[str], prefix: tuple[str, ...]) -> bool:
    return tuple(argv[:len(prefix)]) == prefix


STAGES = parse((ROOT / "Dockerfile").read_text())
BUILDER, FINAL = STAGES[0], STAGES[-1]


def build_steps() -> list[list[str]]:
    return [argv for run in BUILDER.args("RUN") for argv in commands(run) if starts_with(argv, BUILD)]


def test_the_build_stage_builds_the_wheel_the_way_ci_does():
    assert len(STAGES) == 2 and BUILDER.name
    built = build_steps()
    assert len(built) == 1, "the build stage must run `python -m build --outdir DIR .` once"
    outdir, source = built[0][len(BUILD):]
    assert source == "."
    copied = " ".join(BUILDER.args("COPY"))
    for needed in ("pyproject.toml", "setup.py", "README.md", "bot", "prompts"):
        assert needed in copied, f"the build stage does not copy {needed}"


def test_the_final_stage_installs_only_the_wheel():
    outdir = build_steps()[0][len(BUILD)]
    copies = FINAL.args("COPY")
    assert copies and all(c.startswith(f"--from={BUILDER.name} ") for c in copies), "the source tree is copied in"
    assert any(shlex.split(c)[1].rstrip("/") == outdir.rstrip("/") for c in copies)
    landed = shlex.split(copies[0])[2].rstrip("/")
    installs = [argv for run in FINAL.args("RUN") for argv in commands(run) if starts_with(argv, INSTALL)]
    assert len(installs) == 1, "the final stage must `pip install` the wheel once"
    targets = [a for a in installs[0][len(INSTALL):] if not a.startswith("-")]
    assert len(targets) == 1 and targets[0].startswith(f"{landed}/") and targets[0].endswith(".whl")
    assert "-e" not in installs[0] and "--editable" not in installs[0]


def test_the_image_runs_serve_as_a_non_root_user_with_a_working_health_check():
    users = FINAL.args("USER")
    assert users and users[-1] not in ("root", "0")
    [cmd] = FINAL.args("CMD")
    argv = json.loads(cmd) if cmd.startswith("[") else ["sh", "-c", cmd]
    script = argv[-1] if argv[:2] == ["sh", "-c"] else shlex.join(argv)
    served = shlex.split(script.removeprefix("exec "))
    assert starts_with(served, SERVE), served
    assert served[len(SERVE)] == f"${{PORT:-{DEFAULT_PORT}}}"
    [health] = FINAL.args("HEALTHCHECK")
    assert f"http://127.0.0.1:${{PORT:-{DEFAULT_PORT}}}{HEALTH_PATH}" in health
    assert f"EXPOSE {DEFAULT_PORT}" in [f"EXPOSE {a}" for a in FINAL.args("EXPOSE")]


def test_env_example_assigns_no_empty_values():
    """An empty assignment is easy to mistake for a setting; unneeded ones are commented out."""
    lines = [line for line in (ROOT / ".env.example").read_text().splitlines() if line and not line.startswith("#")]
    assert lines and [line for line in lines if not line.partition("=")[2].strip()] == []
