"""The README's settings table is generated from the Settings model; this keeps them in sync."""

from pathlib import Path

from pinclip.settings import settings_markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_settings() -> None:
    text = README.read_text()
    start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->\n")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == settings_markdown_table().strip(), (
        "README settings table is stale: regenerate it with `python -m pinclip.settings`"
    )
