"""README.md tells the truth about settings and commands."""

from __future__ import annotations

import re

from tests.harness.paths import REPO_ROOT
from zenwatcher.settings import ENV_VARIABLES

README = (REPO_ROOT / "README.md").read_text()


class TestSettingsTable:
    def test_every_setting_is_documented_and_nothing_else(self) -> None:
        """The table's variables are exactly the ones Settings.from_env reads."""
        documented = re.findall(r"^\| `([A-Z_]+)` \|", README, re.MULTILINE)
        assert sorted(ENV_VARIABLES) == sorted(documented)


class TestCommands:
    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run calls exactly the README's test command."""
        command = "python3 -m pip install --quiet 'tox>=4' && python3 -m tox"
        assert f"{command}\n" in README
        assert command in (REPO_ROOT / ".ci/run").read_text().splitlines()

    def test_dockerfile_installs_this_version(self) -> None:
        """The Dockerfile pins the version pyproject.toml declares."""
        version = re.search(
            r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.MULTILINE
        )
        assert version is not None
        assert f'"zen-watcher=={version.group(1)}"' in (REPO_ROOT / "Dockerfile").read_text()
