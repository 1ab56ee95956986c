"""`pinclip --help` is written for users: every command says what it does, every option and
argument is described, and the main commands show an example."""

from __future__ import annotations

from typing import Any

import typer.main

from pinclip import cli

MAIN_COMMANDS = (
    "generate-data", "train", "eval", "publish", "worker", "stream-dataset", "api", "backfill",
    "retrain", "produce",
)  # fmt: skip


def root() -> Any:
    cli._register()
    return typer.main.get_command(cli.app)


def all_commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every command by its full name ("train", "services up"); Typer's own click fork."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if hasattr(command, "commands"):
            found.update(all_commands(command, f"{prefix}{name} "))
    return found


def test_the_top_level_help_describes_the_system_for_users() -> None:
    text = root().help or ""
    assert text.startswith("PinCLIP Stream: real-time cold-start embeddings for pins.")
    assert "Sub-commands live next to the code" not in text  # the developer note stays in code


def test_every_option_and_argument_is_described() -> None:
    missing = []
    for name, command in all_commands(root()).items():
        if not (command.help or "").strip():
            missing.append(f"{name}: no description")
        for param in command.params:
            if param.name == "help":
                continue
            if not getattr(param, "help", None):
                missing.append(f"{name}: {param.name}")
    assert missing == []


def test_the_main_commands_show_an_example() -> None:
    commands = all_commands(root())
    lacking = [name for name in MAIN_COMMANDS if "Example:" not in (commands[name].help or "")]
    assert lacking == []


def test_no_help_text_loses_words_to_markdown() -> None:
    """Help is rendered as Markdown: a bare `<N>` would be taken for an HTML tag and vanish."""
    import re

    eaten = []
    for name, command in all_commands(root()).items():
        texts = [command.help or ""] + [getattr(p, "help", "") or "" for p in command.params]
        for text in texts:
            outside_code = re.sub(r"`[^`]*`", "", text)
            eaten += [f"{name}: {tag}" for tag in re.findall(r"<[A-Za-z_][\w-]*>", outside_code)]
    assert eaten == []
