"""SVG → PNG with resvg (a self-contained Rust renderer from PyPI: no Cairo, no system fonts).

Icons are drawn in `currentColor`, which resvg renders black; the background is white, as icons
are shown on a page. The icon fills the square canvas, as its own viewBox says.
"""

from __future__ import annotations

import re

RASTER_SIZE = 96  # pixels; models resize to their own input size
# CSS absolute units in px. resvg refuses a root size given in them when there is no viewBox.
_UNIT_PX = {
    "": 1.0,
    "px": 1.0,
    "pt": 4 / 3,
    "pc": 16.0,
    "mm": 96 / 25.4,
    "cm": 96 / 2.54,
    "in": 96.0,
}
_ROOT = re.compile(r"<svg\b[^>]*>", re.S)
_SIZE = re.compile(r'\b(width|height)\s*=\s*"\s*([\d.]+)\s*(px|pt|pc|mm|cm|in)?\s*"')


def rasterize_svg(svg: bytes, size: int = RASTER_SIZE) -> bytes:
    """PNG bytes of `svg` rendered at size × size on white; ValueError on a broken SVG."""
    try:
        import resvg_py
    except ImportError as exc:  # in the `train` extra
        raise RuntimeError(
            "rasterising SVG icons needs resvg-py: pip install 'pinclip-stream[train]'"
        ) from exc
    png: bytes = resvg_py.svg_to_bytes(
        svg_string=normalise_root_size(svg.decode("utf-8", errors="replace")),
        width=size,
        height=size,
        background="#ffffff",
        skip_system_fonts=True,
    )
    return _square(png, size)


def _square(png: bytes, size: int) -> bytes:
    """resvg keeps a drawing's aspect ratio; centre it on a white size × size canvas."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.size == (size, size):
            return png
        image.thumbnail((size, size))
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        rgba = image.convert("RGBA")
        canvas.paste(rgba, ((size - rgba.width) // 2, (size - rgba.height) // 2), rgba)
    out = io.BytesIO()
    canvas.save(out, "PNG", optimize=True)
    return out.getvalue()


def normalise_root_size(svg: str) -> str:
    """Root width/height in px and a viewBox from them when the drawing has none, so the
    renderer can scale it to our square (letterboxed: aspect ratio kept)."""
    match = _ROOT.search(svg)
    if match is None:
        return svg
    tag = match.group(0)
    sizes = {k: float(v) * _UNIT_PX[u or ""] for k, v, u in _SIZE.findall(tag)}
    if "width" not in sizes or "height" not in sizes or min(sizes.values()) <= 0:
        return svg
    new = _SIZE.sub(lambda m: f'{m.group(1)}="{sizes[m.group(1)]:g}"', tag)
    if "viewBox" not in new:
        new = new[:4] + f' viewBox="0 0 {sizes["width"]:g} {sizes["height"]:g}"' + new[4:]
    return svg[: match.start()] + new + svg[match.end() :]
