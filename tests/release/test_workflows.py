"""The GitHub workflows, checked offline: they cannot run here, so lint them and read them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.release.artifacts import DISTRIBUTIONS, ROOT, VENV_BIN

WORKFLOWS = ROOT / ".github" / "workflows"
HUB_FILES = "hub/_data/meltano/extractors/tap-dome/*.yml"


def workflow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def _lint(*files: Path) -> list[subprocess.CompletedProcess[str]]:
    names = [str(f) for f in files]
    return [
        subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        for cmd in (
            [
                str(VENV_BIN / "check-jsonschema"),
                "--builtin-schema",
                "vendor.github-workflows",
                *names,
            ],
            [str(VENV_BIN / "actionlint"), "-no-color", *names],
        )
    ]


def _steps(job: dict[str, Any]) -> str:
    """The shell commands of a job's steps, one after another."""
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_workflows_pass_the_schema_and_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "release.yml"}
    for done in _lint(*files):
        assert done.returncode == 0, done.args[0] + "\n" + done.stdout + done.stderr


def test_the_linters_reject_a_broken_workflow(tmp_path: Path) -> None:
    broken = workflow("release.yml")
    del broken["jobs"]["build"]["runs-on"]
    broken["jobs"]["test"]["needs"] = "no-such-job"
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    schema, actionlint = _lint(path)
    assert schema.returncode != 0
    assert "runs-on" in schema.stdout + schema.stderr
    assert actionlint.returncode != 0
    assert "no-such-job" in actionlint.stdout + actionlint.stderr


def test_ci_runs_the_readme_test_command() -> None:
    assert "```bash\nmake test\n```" in (ROOT / "README.md").read_text()
    ci = workflow("ci.yml")
    assert set(ci[True]) == {
        "push",
        "pull_request",
    }  # YAML 1.1 reads the key `on` as True
    runs = [s.get("run") for s in ci["jobs"]["test"]["steps"]]
    assert "make test" in runs
    assert ci["permissions"] == {"contents": "read"}


def test_release_publishes_on_a_version_tag_by_trusted_publishing() -> None:
    release = workflow("release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert release["permissions"] == {"contents": "read"}
    publish = jobs["publish-pypi"]
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    uses = [s.get("uses", "") for s in publish["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish@") for u in uses)
    # No token: nothing is read from the repository's secrets, nothing passed as a password.
    text = (WORKFLOWS / "release.yml").read_text()
    assert "secrets." not in text
    assert "password" not in text
    # Order: build -> test the built files -> publish -> GitHub release.
    assert jobs["test"]["needs"] == "build"
    assert publish["needs"] == "test"
    assert jobs["github-release"]["needs"] == "publish-pypi"


def test_release_tests_and_ships_the_files_it_built() -> None:
    jobs = workflow("release.yml")["jobs"]
    build = _steps(jobs["build"])
    for source in DISTRIBUTIONS.values():
        assert f"--out-dir dist {source.relative_to(ROOT)}" in build
    assert "scripts/release_notes.py --tag" in build
    test_steps = jobs["test"]["steps"]
    make_test = next(s for s in test_steps if s.get("run") == "make test")
    assert make_test["env"]["RELEASE_DIST_DIR"].endswith("/dist")
    github_release = _steps(jobs["github-release"])
    assert "gh release create" in github_release
    assert HUB_FILES in github_release
    assert "dist/*" in github_release
    assert jobs["github-release"]["permissions"] == {"contents": "write"}


def test_the_tag_guards_every_published_version() -> None:
    spec = importlib.util.spec_from_file_location(
        "release_notes", ROOT / "scripts" / "release_notes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {p.parent for p in module.PYPROJECTS} == set(DISTRIBUTIONS.values())


def test_release_notes_come_from_the_changelog_and_guard_the_version() -> None:
    script = ROOT / "scripts" / "release_notes.py"
    version = next(
        line.split('"')[1]
        for line in (ROOT / "tap-dome" / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    ok = subprocess.run(
        [sys.executable, str(script), "--tag", f"v{version}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("### ")
    assert "## [" not in ok.stdout
    assert "[Unreleased]:" not in ok.stdout
    wrong = subprocess.run(
        [sys.executable, str(script), "--tag", "v99.0.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == (
        f"tag v99.0.0 but tap-dome/pyproject.toml has version {version}: bump one of them"
    )


@pytest.mark.parametrize("tag", ["0.1.0", "v1", "release-1.0.0"])
def test_release_notes_reject_a_malformed_tag(tag: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "release_notes.py"), "--tag", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "is not of the form vX.Y.Z" in done.stderr
