"""LVIS federated evaluation: a hand-computed case where each federated rule changes the
answer, and random federated cases compared with the ``lvis`` package's own evaluator."""
from __future__ import annotations

import json

import numpy as np
import pytest

from active_o3_training.lvis_eval import lvis_evaluate, main


def _img(i, neg=(), nel=()):
    return {"id": i, "width": 200, "height": 200, "coco_url": f"http://images.cocodataset.org/val2017/{i:012d}.jpg",
            "neg_category_ids": list(neg), "not_exhaustive_category_ids": list(nel)}


def _ann(aid, img, cat, box):
    x, y, w, h = box
    return {"id": aid, "image_id": img, "category_id": cat, "bbox": [x, y, w, h], "area": w * h}


def _det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": list(box), "score": score}


A, B, C, D = 1, 2, 3, 4
BOX1, BOX2, BOX3, BOX4, BOX5 = (10, 10, 40, 40), (100, 100, 50, 50), (20, 120, 30, 30), (120, 20, 40, 30), (60, 60, 30, 30)


def hand_case():
    """Image 1: A and D annotated, B verified absent, D not exhaustively labelled, C unknown.
    Image 2: B and C annotated."""
    gt = {"images": [_img(1, neg=[B], nel=[D]), _img(2)],
          "categories": [{"id": A, "name": "a", "frequency": "f"}, {"id": B, "name": "b", "frequency": "c"},
                         {"id": C, "name": "c", "frequency": "r"}, {"id": D, "name": "d", "frequency": "f"}],
          "annotations": [_ann(1, 1, A, BOX1), _ann(2, 1, D, BOX2), _ann(3, 2, B, BOX3), _ann(4, 2, C, BOX4)]}
    dets = [_det(1, A, BOX5, 0.95), _det(1, A, BOX1, 0.9),     # A: a false positive above the hit -> AP 0.5
            _det(1, B, BOX5, 0.9), _det(2, B, BOX3, 0.5),      # B: FP where verified absent -> AP 0.5
            _det(1, C, BOX5, 0.99), _det(2, C, BOX4, 0.8),     # C: image 1 says nothing about C -> dropped, AP 1
            _det(1, D, BOX3, 0.7), _det(1, D, BOX2, 0.6)]      # D: not exhaustive -> unmatched ignored, AP 1
    return gt, dets


def test_hand_computed_federated_rules():
    gt, dets = hand_case()
    res = lvis_evaluate(gt, dets)
    assert res["AP"] == pytest.approx((0.5 + 0.5 + 1.0 + 1.0) / 4)
    assert res["APf"] == pytest.approx(0.75) and res["APc"] == pytest.approx(0.5) and res["APr"] == pytest.approx(1.0)
    assert res["AR@300"] == pytest.approx(1.0)
    # the same detections scored as plain COCO (no federated lists) lose C and D
    plain = {**gt, "images": [{k: v for k, v in im.items() if "category_ids" not in k} for im in gt["images"]]}
    plain["images"][0]["neg_category_ids"] = [B, C]  # every class 'verified absent': COCO's exhaustive view
    assert lvis_evaluate(plain, dets)["AP"] == pytest.approx(0.5)


def test_max_dets_is_per_image_over_all_categories():
    gt, dets = hand_case()
    # 1 detection per image: image 1 keeps its top score (C, then dropped by rule 1), image 2 its C hit
    res = lvis_evaluate(gt, dets, max_dets=1)
    assert res["AP"] == pytest.approx(np.mean([0.0, 1.0, 0.0, 0.0]))


def test_cli_and_errors(tmp_path, capsys):
    gt, dets = hand_case()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "dets.json")]) == 0
    assert json.loads(capsys.readouterr().out)["AP"] == pytest.approx(0.75)
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "none.json")]) == 2
    (tmp_path / "bad.json").write_text(json.dumps([_det(99, A, BOX1, 0.5)]))
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "bad.json")]) == 2
    assert "not in the ground truth" in capsys.readouterr().err


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"c{c}", "frequency": "rcf"[c % 3]} for c in range(1, 7)]
    images, anns, dets = [], [], []
    aid = 1
    for i in range(1, 7):
        present = set(rng.choice(range(1, 7), size=int(rng.integers(1, 4)), replace=False).tolist())
        absent = [c for c in range(1, 7) if c not in present]
        neg = sorted(rng.choice(absent, size=int(rng.integers(0, len(absent) + 1)), replace=False).tolist())
        nel = sorted(c for c in present if rng.random() < 0.4)
        images.append(_img(i, neg, nel))
        for c in present:
            for _ in range(int(rng.integers(1, 4))):
                x, y = rng.uniform(0, 150, 2)
                w, h = rng.uniform(4, 120, 2)
                box = [float(x), float(y), float(min(w, 200 - x)), float(min(h, 200 - y))]
                anns.append(_ann(aid, i, c, box))
                aid += 1
                if rng.random() < 0.8:  # a jittered hit
                    j = rng.normal(0, 0.15, 4) * [box[2], box[3], box[2], box[3]]
                    dets.append(_det(i, c, [box[0] + j[0], box[1] + j[1], max(1.0, box[2] + j[2]),
                                            max(1.0, box[3] + j[3])], float(rng.random())))
        for _ in range(int(rng.integers(0, 8))):  # false positives of any category
            x, y = rng.uniform(0, 150, 2)
            dets.append(_det(i, int(rng.integers(1, 7)), [float(x), float(y), float(rng.uniform(4, 50)),
                                                          float(rng.uniform(4, 50))], float(rng.random())))
    return {"images": images, "annotations": anns, "categories": cats}, dets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_dets", [300, 5])
def test_matches_the_lvis_package(seed, max_dets, tmp_path, monkeypatch):
    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 still uses the removed alias
    lvis = pytest.importorskip("lvis")
    import logging

    logging.getLogger("lvis").setLevel(logging.ERROR)
    gt, dets = random_case(seed)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    ref_gt = lvis.LVIS(str(path))
    ev = lvis.LVISEval(ref_gt, lvis.LVISResults(ref_gt, json.loads(json.dumps(dets)), max_dets=max_dets), "bbox")
    ev.params.max_dets = max_dets
    ev.run()
    ours = lvis_evaluate(gt, dets, max_dets=max_dets)
    for key, ref in ev.results.items():
        assert ours[key] == pytest.approx(float(ref), abs=1e-9), (key, ours[key], ref)
