"""A synthetic Pin–Board dataset whose signal is split between image, text and graph.

Why synthetic: the neighbor-alignment objective only pays off when the graph knows something
content does not. This generator makes that explicit so the benchmark measures it.

Latent factors per pin and where they are observable:

- **topic** (e.g. "garden"): image (shape + hue) *and* text (topic nouns). Both are noisy: the
  title drops the noun sometimes and some images draw another topic's shape.
- **style**: image only (a low-contrast background texture, visible with probability
  ``style_visible``). Text never mentions it.
- **mood**: text only (adjectives in title/description). Images never show it.
- **community**: graph only. Topics are partitioned into communities at random; a board draws its
  pins from one community. So "garden" and "cars" may always share boards, which nothing in the
  content reveals. Boards also prefer one style and one mood.

Board sizes follow a Zipf law (a few giant boards, a long tail of small ones). Deterministic
under ``seed``: the same config writes byte-identical files.
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from trainer.dataset import PinRecord, SaveRecord, write_dataset

TOPIC_WORDS: list[tuple[str, ...]] = [
    ("garden", "flowers", "plants"),
    ("recipe", "baking", "dessert"),
    ("travel", "beach", "island"),
    ("outfit", "dress", "fashion"),
    ("wedding", "bride", "ceremony"),
    ("workout", "fitness", "yoga"),
    ("bedroom", "pillow", "bedding"),
    ("cars", "engine", "roadster"),
    ("tattoo", "ink", "sketch"),
    ("puppy", "dog", "kennel"),
    ("camping", "tent", "hiking"),
    ("nails", "manicure", "polish"),
    ("coffee", "latte", "espresso"),
    ("guitar", "music", "chords"),
    ("pottery", "ceramic", "clay"),
    ("skincare", "serum", "glow"),
]
MOOD_WORDS: list[tuple[str, ...]] = [
    ("cozy", "warm", "snug"),
    ("minimalist", "clean", "simple"),
    ("vintage", "retro", "antique"),
    ("bold", "vivid", "daring"),
    ("rustic", "earthy", "natural"),
    ("playful", "fun", "quirky"),
]
FILLER_WORDS = (
    "ideas", "inspo", "diy", "best", "new", "easy", "today", "love", "guide", "tips", "my",
    "favorite", "simple", "photo", "collection", "look", "week", "small", "big", "top",
)  # fmt: skip
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "ring", "bar")
TEXTURES = ("stripes", "dots", "checker", "diagonal", "grid", "waves")


@dataclass(frozen=True)
class GeneratorConfig:
    num_pins: int = 3000
    num_boards: int = 300
    num_topics: int = 12
    num_communities: int = 4
    num_styles: int = 4
    num_moods: int = 4
    num_users: int = 100
    board_size_zipf: float = 1.0  # board popularity ∝ 1 / rank^s: a few giant boards
    extra_saves_mean: float = 0.7  # extra boards per pin beyond its first (Poisson)
    board_purity: float = 0.85  # P(pin's latent factor follows its board's)
    style_visible: float = 0.7  # P(texture drawn in the image)
    image_topic_noise: float = 0.1  # P(shape of another topic)
    title_topic_drop: float = 0.35  # P(title omits the topic noun)
    text_topic_noise: float = 0.1  # P(topic noun of another topic)
    image_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_topics > len(TOPIC_WORDS) or self.num_moods > len(MOOD_WORDS):
            raise ValueError("num_topics/num_moods exceed the built-in vocabularies")
        if self.num_styles > len(TEXTURES):
            raise ValueError(f"num_styles must be <= {len(TEXTURES)}")
        if not 1 <= self.num_communities <= self.num_topics:
            raise ValueError("need 1 <= num_communities <= num_topics")


@dataclass(frozen=True)
class PinLatents:
    pin_id: str
    topic: int
    style: int
    mood: int
    community: int


@dataclass(frozen=True)
class Board:
    board_id: str
    community: int
    style: int
    mood: int
    user_id: str


def _pick(rng: random.Random, p_keep: float, keep: int, n: int) -> int:
    return keep if rng.random() < p_keep else rng.randrange(n)


def topic_hue(topic: int, num_topics: int) -> float:
    return (topic / num_topics) % 1.0


def render_image(
    rng: random.Random, topic: int, style: int | None, cfg: GeneratorConfig
) -> Image.Image:
    """Shape + hue say the topic; an optional faint texture says the style; layout is nuisance."""
    s = cfg.image_size
    tint = rng.uniform(0.85, 0.97)
    bg = tuple(int(255 * tint + rng.randint(-8, 8)) for _ in range(3))
    img = Image.new("RGB", (s, s), bg)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    if style is not None:
        ink = tuple(max(0, c - 45) for c in bg)
        _draw_texture(draw, TEXTURES[style], s, ink, rng)
    hue = (topic_hue(topic, cfg.num_topics) + rng.uniform(-0.03, 0.03)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 0.95))
    colour = (int(r * 255), int(g * 255), int(b * 255))
    shape = SHAPES[topic % len(SHAPES)]
    layout = rng.choice(("center", "offset", "pair"))
    if layout == "pair":
        for _ in range(2):
            size = rng.uniform(0.18, 0.28) * s
            _draw_shape(
                draw, shape, rng.uniform(size, s - size), rng.uniform(size, s - size), size, colour
            )
    else:
        size = rng.uniform(0.25, 0.38) * s
        jitter = 0.0 if layout == "center" else 0.15 * s
        cx = s / 2 + rng.uniform(-jitter, jitter)
        cy = s / 2 + rng.uniform(-jitter, jitter)
        _draw_shape(draw, shape, cx, cy, size, colour)
    return img


def _draw_texture(
    draw: ImageDraw.ImageDraw, texture: str, s: int, ink: tuple[int, ...], rng: random.Random
) -> None:
    step = max(4, s // 8)
    off = rng.randrange(step)
    fill = tuple(ink)
    if texture == "stripes":
        for y in range(off, s, step):
            draw.line([(0, y), (s, y)], fill=fill, width=1)  # type: ignore[arg-type]
    elif texture == "dots":
        for y in range(off, s, step):
            for x in range(off, s, step):
                draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=fill)  # type: ignore[arg-type]
    elif texture == "checker":
        for y in range(0, s, step):
            for x in range(0, s, step):
                if (x // step + y // step) % 2 == 0:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=fill)  # type: ignore[arg-type]
    elif texture == "diagonal":
        for k in range(-s + off, s, step):
            draw.line([(k, 0), (k + s, s)], fill=fill, width=1)  # type: ignore[arg-type]
    elif texture == "grid":
        for k in range(off, s, step):
            draw.line([(k, 0), (k, s)], fill=fill, width=1)  # type: ignore[arg-type]
            draw.line([(0, k), (s, k)], fill=fill, width=1)  # type: ignore[arg-type]
    elif texture == "waves":
        for y in range(off, s, step):
            pts = [(x, y + 2 * math.sin(x / 3.0)) for x in range(0, s + 1, 2)]
            draw.line(pts, fill=fill, width=1)  # type: ignore[arg-type]


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: tuple[int, ...]
) -> None:
    fill = tuple(colour)
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        draw.ellipse(box, fill=fill)  # type: ignore[arg-type]
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(r / 3)))  # type: ignore[arg-type]
    elif shape == "square":
        draw.rectangle(box, fill=fill)  # type: ignore[arg-type]
    elif shape == "bar":
        draw.rectangle([cx - r, cy - r / 3, cx + r, cy + r / 3], fill=fill)  # type: ignore[arg-type]
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)  # type: ignore[arg-type]
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)  # type: ignore[arg-type]
    elif shape == "cross":
        w = r / 3
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)  # type: ignore[arg-type]
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)  # type: ignore[arg-type]
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
        draw.polygon(pts, fill=fill)  # type: ignore[arg-type]


def make_texts(rng: random.Random, topic: int, mood: int, cfg: GeneratorConfig) -> tuple[str, str]:
    """Title: maybe the topic noun, maybe a mood word. Description: mood-heavy, topic-light."""
    shown_topic = _pick(rng, 1 - cfg.text_topic_noise, topic, cfg.num_topics)
    nouns = TOPIC_WORDS[shown_topic]
    moods = MOOD_WORDS[mood]
    title: list[str] = []
    if rng.random() < 0.5:
        title.append(rng.choice(moods))
    if rng.random() >= cfg.title_topic_drop:
        title.append(rng.choice(nouns))
    title.extend(rng.sample(FILLER_WORDS, k=rng.randint(1, 2)))
    rng.shuffle(title)
    desc: list[str] = []
    if rng.random() < 0.75:
        desc.append(f"a {rng.choice(moods)} take")
    if rng.random() < 0.5:
        desc.append(f"on {rng.choice(nouns)}")
    desc.extend(rng.sample(FILLER_WORDS, k=rng.randint(2, 4)))
    return " ".join(title), " ".join(desc)


def _zipf_weights(n: int, s: float, rng: random.Random) -> list[float]:
    weights = [1.0 / (rank**s) for rank in range(1, n + 1)]
    rng.shuffle(weights)
    return weights


def generate(out_dir: str | Path, cfg: GeneratorConfig) -> tuple[list[PinLatents], list[Board]]:
    """Render images, write pins.jsonl/saves.jsonl/dataset.json and latents.jsonl (for analysis)."""
    rng = random.Random(cfg.seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)

    topic_order = list(range(cfg.num_topics))
    rng.shuffle(topic_order)
    community_of_topic = {t: i % cfg.num_communities for i, t in enumerate(topic_order)}
    topics_in: dict[int, list[int]] = {}
    for t, c in sorted(community_of_topic.items()):
        topics_in.setdefault(c, []).append(t)

    boards = [
        Board(
            board_id=f"b{b:05d}",
            community=rng.randrange(cfg.num_communities),
            style=rng.randrange(cfg.num_styles),
            mood=rng.randrange(cfg.num_moods),
            user_id=f"u{rng.randrange(cfg.num_users):04d}",
        )
        for b in range(cfg.num_boards)
    ]
    weights = _zipf_weights(cfg.num_boards, cfg.board_size_zipf, rng)
    boards_in: dict[int, list[int]] = {}
    for i, board in enumerate(boards):
        boards_in.setdefault(board.community, []).append(i)

    pins: list[PinRecord] = []
    saves: list[SaveRecord] = []
    latents: list[PinLatents] = []
    ts = 1_700_000_000.0
    for p in range(cfg.num_pins):
        pin_id = f"p{p:06d}"
        first = rng.choices(range(cfg.num_boards), weights=weights)[0]
        board = boards[first]
        if rng.random() < cfg.board_purity:
            topic = rng.choice(topics_in[board.community])
        else:
            topic = rng.randrange(cfg.num_topics)
        style = _pick(rng, cfg.board_purity, board.style, cfg.num_styles)
        mood = _pick(rng, cfg.board_purity, board.mood, cfg.num_moods)
        latents.append(PinLatents(pin_id, topic, style, mood, community_of_topic[topic]))

        shape_topic = _pick(rng, 1 - cfg.image_topic_noise, topic, cfg.num_topics)
        shown_style = style if rng.random() < cfg.style_visible else None
        img = render_image(rng, shape_topic, shown_style, cfg)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False)
        rel = f"images/{pin_id}.png"
        (out / rel).write_bytes(buf.getvalue())
        title, description = make_texts(rng, topic, mood, cfg)
        pins.append(PinRecord(pin_id, title, description, rel))

        chosen = [first]
        for _ in range(_poisson(rng, cfg.extra_saves_mean)):
            pool = (
                boards_in[community_of_topic[topic]]
                if rng.random() < cfg.board_purity
                else list(range(cfg.num_boards))
            )
            extra = rng.choices(pool, weights=[weights[i] for i in pool])[0]
            if extra not in chosen:
                chosen.append(extra)
        for b in chosen:
            ts += rng.uniform(1.0, 60.0)
            saves.append(SaveRecord(pin_id, boards[b].board_id, boards[b].user_id, round(ts, 3)))

    write_dataset(out, pins, saves, meta={"name": "synthetic", "generator": asdict(cfg)})
    with (out / "latents.jsonl").open("w", encoding="utf-8") as f:
        for lat in latents:
            f.write(json.dumps(asdict(lat)) + "\n")
    return latents, boards


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; fine for the small means used here."""
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k
