"""How wide is the text detector's box around one real character?

Question: the ``text`` module drops a single-character read whose box is much wider than tall
(``single_char_max_aspect``), because zoomed textures (foliage, grids, fences) were read as '1'
in boxes up to 2x wider than tall.  What width / height do the boxes of REAL single glyphs
have, so that the threshold keeps them?

Renders each character alone (black on white, DejaVu Sans, Sans Bold, Serif and Sans Mono
at 16, 30 and 60 px), runs the ``text`` module with the filter off and a low recogniser
floor (0.5), and reports, per character read, the largest box width / height over fonts and
sizes.  No frame of any evaluation set is used.

    python benchmarks/glyph_boxes.py
"""
from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, footer, load_average, machine, write_outputs  # noqa: E402

FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
SIZES = (16, 30, 60)
CHARACTERS = string.ascii_uppercase + string.digits + "mw%#@ilj!|"


def glyph_image(ch: str, font: str, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    from active_o3_training.data.synthetic import _font

    side = max(120, size * 4)
    img = Image.new("RGB", (side, side), (255, 255, 255))
    ImageDraw.Draw(img).text((side // 3, side // 3), ch, font=_font(font, size), fill=(0, 0, 0))
    return np.asarray(img)


def markdown(result: dict[str, Any]) -> str:
    rows = sorted(result["widest"].items(), key=lambda kv: -kv[1]["aspect"])
    lines = [f"{result['single_character_reads']} single-character reads of {result['renders']} renders "
             f"({len(result['fonts'])} fonts x {len(result['sizes'])} sizes).  Largest box width / height per "
             "character read (the glyph drawn, font, size):", "",
             "| read | width / height | drawn | font | px |", "|---|---:|---|---|---:|"]
    lines += [f"| `{k}` | {v['aspect']:.2f} | `{v['drawn']}` | {v['font']} | {v['size']} |" for k, v in rows]
    lines += ["", f"Widest except M, W, m, w: {result['widest_except_wide_glyphs']:.2f}.", "", footer(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--threads", type=int, default=2, help="detector threads")
    p.add_argument("--out", default="benchmarks/results/glyph_boxes", help="output path without extension")
    args = p.parse_args(argv)
    from active_o3_ros.backends.text import WIDE_GLYPHS, TextTaskModel

    model = TextTaskModel(threads=args.threads, text_score=0.5, single_char_max_aspect=0.0)
    load_before = load_average()
    widest: dict[str, dict[str, Any]] = {}
    reads = renders = 0
    for font in FONTS:
        for size in SIZES:
            for ch in CHARACTERS:
                renders += 1
                for d in model.detect([glyph_image(ch, font, size)], ["text"])[0].detections:
                    read = d.text.strip()
                    if len(read) != 1:
                        continue
                    reads += 1
                    aspect = d.box.width / max(d.box.height, 1e-6)
                    if aspect > widest.get(read, {}).get("aspect", 0.0):
                        widest[read] = {"aspect": round(aspect, 3), "drawn": ch, "font": font, "size": size}
    result = {"question": "box width / height of the text detector around one real character",
              "command": command("glyph_boxes.py", argv), "fonts": list(FONTS), "sizes": list(SIZES),
              "renders": renders, "single_character_reads": reads, "widest": widest,
              "widest_except_wide_glyphs": max((v["aspect"] for k, v in widest.items() if k not in WIDE_GLYPHS),
                                               default=0.0),
              "machine": machine(load_before)}
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
