"""A realistic-enough event stream for demos, tests and benchmarks (no torch).

Pins belong to themes (a colour palette + words + boards), so similar pins exist and repins stay
mostly within a theme. Images are real PNG/JPEG files drawn with Pillow, or inline base64.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

from streams.events import NewPin, Repin

THEMES = {
    "ocean": ((20, 90, 200), ["wave", "beach", "surf", "coral", "sail"]),
    "forest": ((30, 140, 50), ["pine", "moss", "trail", "fern", "cabin"]),
    "desert": ((220, 170, 60), ["dune", "cactus", "canyon", "mesa", "sunset"]),
    "rose": ((210, 60, 120), ["bouquet", "petal", "garden", "bloom", "vase"]),
    "night": ((40, 30, 80), ["stars", "moon", "city", "neon", "lantern"]),
    "snow": ((225, 230, 240), ["ski", "frost", "igloo", "glacier", "sled"]),
}


def draw_image(theme: str, rng: random.Random, size: int = 96, fmt: str = "PNG") -> bytes:
    """A theme-coloured picture with a few random shapes; encoded as PNG or JPEG."""
    base, _ = THEMES[theme]
    jitter = [max(0, min(255, c + rng.randint(-25, 25))) for c in base]
    image = Image.new("RGB", (size, size), (jitter[0], jitter[1], jitter[2]))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.randint(0, size - 10), rng.randint(0, size - 10)
        x1, y1 = rng.randint(x0 + 5, size), rng.randint(y0 + 5, size)
        colour = tuple(max(0, min(255, c + rng.randint(-80, 80))) for c in base)
        draw.ellipse((x0, y0, x1, y1), fill=colour) if rng.random() < 0.5 else draw.rectangle(
            (x0, y0, x1, y1), fill=colour
        )
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


@dataclass
class SyntheticStream:
    """Deterministic (seeded) generator of NewPin and Repin events with unique id prefix."""

    prefix: str
    image_dir: Path
    seed: int = 0
    inline_fraction: float = 0.3
    boards_per_theme: int = 4

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.image_dir.mkdir(parents=True, exist_ok=True)
        self.pins: list[tuple[str, str]] = []  # (pin_id, theme)

    def board(self, theme: str) -> str:
        return f"{self.prefix}b-{theme}-{self.rng.randrange(self.boards_per_theme)}"

    def new_pin(self, index: int, created_at: datetime | None = None) -> NewPin:
        rng = self.rng
        theme = rng.choice(list(THEMES))
        words = rng.sample(THEMES[theme][1], 2)
        pin_id = f"{self.prefix}p{index:06d}"
        fmt = "JPEG" if rng.random() < 0.5 else "PNG"
        image = draw_image(theme, rng, fmt=fmt)
        fields: dict[str, object] = {
            "pin_id": pin_id,
            "board_id": self.board(theme),
            "user_id": f"{self.prefix}u{rng.randrange(50)}",
            "title": f"{words[0].title()} {words[1]} ideas",
            "description": f"A {theme} pin about {words[0]} and {words[1]}.",
            "created_at": (created_at or datetime.now(UTC)).isoformat(),
            "is_ad": rng.random() < 0.1,
        }
        self.pins.append((pin_id, theme))
        if rng.random() < self.inline_fraction:
            return NewPin.with_inline_image(image, **fields)
        path = self.image_dir / f"{pin_id}.{fmt.lower()}"
        path.write_bytes(image)
        return NewPin.model_validate({**fields, "image_uri": path.resolve().as_uri()})

    def new_pins(self, count: int) -> Iterator[NewPin]:
        start = len(self.pins)
        for index in range(start, start + count):
            yield self.new_pin(index)

    def repin(self, ts: datetime | None = None) -> Repin:
        """A save of an existing pin, mostly to a board of its own theme."""
        pin_id, theme = self.rng.choice(self.pins)
        if self.rng.random() < 0.2:
            theme = self.rng.choice(list(THEMES))
        return Repin(
            pin_id=pin_id,
            board_id=self.board(theme),
            user_id=f"{self.prefix}u{self.rng.randrange(50)}",
            ts=ts or datetime.now(UTC) + timedelta(seconds=self.rng.random()),
        )
