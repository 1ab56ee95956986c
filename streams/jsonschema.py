"""Generate the published JSON Schemas (`streams/schemas/*.json`) from the event models.

Run `python -m streams.jsonschema` after changing `streams.events`; a unit test fails while the
committed files differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from streams.events import EVENT_MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render_schemas() -> dict[str, str]:
    """File name → JSON text, deterministic (sorted keys, trailing newline)."""
    rendered = {}
    for name, model in EVENT_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"pinclip-stream/{name}.json"
        rendered[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render_schemas().items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(path)
