"""How small can a box be and still hold a correct read?

Question: on text-free frames some false reads sit in boxes a few pixels tall (a '1' in 2x2
frame pixels, a '4' in 5x4).  The ``text`` module could drop any read whose box, in the pixels
of the crop it was given, is shorter than some height (``min_box_height``).  Below what box
height does the detector + recogniser still read real text correctly?

Renders short items of the kinds the scenes use (words, codes like "A12", prices like
"$4.50") and single characters, black on white and grey on grey, in DejaVu Sans / Serif /
Sans Bold at cap heights 3-16 px, runs the ``text`` module with its defaults, and reports per
cap height how many renders were read exactly and the smallest box height among exact reads.
No frame of any evaluation set is used.

    python benchmarks/read_heights.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, footer, load_average, machine, write_outputs  # noqa: E402

FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif.ttf")
ITEMS = ("EXIT", "A12", "$4.50", "DOCK", "B7", "7", "N", "4")
CAP_HEIGHTS = (3, 4, 5, 6, 7, 8, 10, 12, 16)
COLOURS = (((255, 255, 255), (0, 0, 0)), ((150, 150, 150), (40, 40, 40)))


def item_image(text: str, font: str, cap: int, back, ink) -> np.ndarray:
    """``text`` at cap height ``cap`` px (the font size scaled so "H" is ``cap`` px tall)."""
    from PIL import Image, ImageDraw

    from active_o3_training.data.synthetic import _font

    probe = _font(font, 100).getbbox("H")
    size = max(2, int(round(cap * 100 / max(probe[3] - probe[1], 1))))
    f = _font(font, size)
    img = Image.new("RGB", (max(96, size * len(text) * 2), max(64, size * 4)), back)
    ImageDraw.Draw(img).text((size, size), text, font=f, fill=ink)
    return np.asarray(img)


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['renders_per_height']} renders per cap height ({len(result['items'])} items x "
             f"{len(result['fonts'])} fonts x {len(result['colours'])} contrasts); the text module's defaults.", "",
             "| cap height px | read exactly | smallest box height of an exact read px | boxes read wrongly |",
             "|---:|---:|---:|---:|"]
    for r in result["by_cap_height"]:
        lo = "" if r["smallest_exact_box_height"] is None else f"{r['smallest_exact_box_height']:.0f}"
        lines.append(f"| {r['cap_height']} | {r['exact']} | {lo} | {r['wrong']} |")
    lo = result["smallest_exact_box_height"]
    lines += ["", f"Smallest box height of any exact read: {lo if lo is not None else 'none'} px.", "", footer(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--threads", type=int, default=2, help="detector threads")
    p.add_argument("--out", default="benchmarks/results/read_heights", help="output path without extension")
    args = p.parse_args(argv)
    from active_o3_ros.backends.text import TextTaskModel

    model = TextTaskModel(threads=args.threads)
    load_before = load_average()
    rows = []
    for cap in CAP_HEIGHTS:
        exact = wrong = 0
        heights: list[float] = []
        for font in FONTS:
            for back, ink in COLOURS:
                for item in ITEMS:
                    for d in model.detect([item_image(item, font, cap, back, ink)], ["text"])[0].detections:
                        if d.text.strip() == item:
                            exact += 1
                            heights.append(d.box.height)
                        else:
                            wrong += 1
        rows.append({"cap_height": cap, "exact": exact, "wrong": wrong,
                     "smallest_exact_box_height": round(min(heights), 1) if heights else None})
    found = [r["smallest_exact_box_height"] for r in rows if r["smallest_exact_box_height"] is not None]
    result = {"question": "the smallest box (crop pixels) that holds a correct read",
              "command": command("read_heights.py", argv), "fonts": list(FONTS), "items": list(ITEMS),
              "colours": [list(map(list, c)) for c in COLOURS],
              "renders_per_height": len(FONTS) * len(COLOURS) * len(ITEMS), "by_cap_height": rows,
              "smallest_exact_box_height": min(found) if found else None, "machine": machine(load_before)}
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
