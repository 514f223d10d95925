"""Readers reject malformed files with a clear error (never a crash or an unbounded
allocation), a SIGKILLed mcap is recoverable up to its last complete chunk, and the repo
keeps its security rules (AST scan: no shell=True, torch.load only with weights_only=True,
no pickle / yaml.load / eval, trust_remote_code off by default)."""
from __future__ import annotations

import ast
import json
import resource
from pathlib import Path

import numpy as np
import pytest

import relutil  # noqa: F401  (paths)
from active_o3_ros.ros import bags
from active_o3_ros.ros.bag_recovery import RecoveryError, recover_mcap

REPO = Path(__file__).resolve().parents[2]


def _write_frames(path: Path, n: int, storage: str = "mcap") -> None:
    store = bags.typestore()
    T = store.types
    w = bags.open_writer(path, storage)
    c = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
    for i in range(n):
        m = T["sensor_msgs/msg/Image"](
            header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=i, nanosec=0), frame_id="c"),
            height=48, width=64, encoding="rgb8", is_bigendian=0, step=192, data=np.full(64 * 48 * 3, i % 256, np.uint8))
        w.write(c, (i + 1) * 10**9, store.serialize_cdr(m, "sensor_msgs/msg/Image"))
    w.close()


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("fraction", [0.35, 0.8, 0.999])
def test_truncated_mcap_clear_error_then_recovered(tmp_path, fraction):
    _write_frames(tmp_path / "full", 300)
    mcap = next((tmp_path / "full").glob("*.mcap"))
    data = mcap.read_bytes()
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / mcap.name).write_bytes(data[: int(len(data) * fraction)])  # what SIGKILL leaves: no footer, no yaml
    with pytest.raises(bags.BagError, match="cannot open bag"):
        bags.bag_info(killed)
    report = recover_mcap(killed, tmp_path / "fixed")
    stamps = [ts for _t, _m, ts, _r in bags.iter_raw(tmp_path / "fixed")]
    # a prefix of what was written, in order, every message intact (whole chunks only)
    assert stamps == [(i + 1) * 10**9 for i in range(len(stamps))]
    assert report.messages == len(stamps) and report.had_footer is False
    chunk_msgs = (1 << 20) // (64 * 48 * 3) + 1  # ~ messages per 1 MiB chunk
    assert len(stamps) >= int(len(data) * fraction) // (1 << 20) * chunk_msgs - chunk_msgs
    store = bags.typestore()
    for _t, mt, ts, raw in bags.iter_raw(tmp_path / "fixed"):
        msg = store.deserialize_cdr(raw, mt)
        assert int(msg.data[0]) == (ts // 10**9 - 1) % 256 and msg.header.stamp.sec == ts // 10**9 - 1


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x89MCAP0\r\n" + b"\x01" + (2**62).to_bytes(8, "little"),
                                     b"\x89MCAP0\r\n\x01\x10\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 16])
def test_garbage_mcap_rejected_without_allocation(tmp_path, content):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bag_0.mcap").write_bytes(content)
    before = _maxrss_mb()
    with pytest.raises(bags.BagError):
        bags.bag_info(bag)
    with pytest.raises(RecoveryError) as ei:
        recover_mcap(bag, tmp_path / "out")
    assert str(ei.value) and not (tmp_path / "out").exists()
    assert _maxrss_mb() - before < 200  # a 2^62-byte record claim costs nothing


def test_garbage_metadata_and_sqlite_rejected(tmp_path):
    _write_frames(tmp_path / "ok", 3)
    bad = tmp_path / "badmeta"
    bad.mkdir()
    for f in (tmp_path / "ok").iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  version: [1, 2\n")
    with pytest.raises(bags.BagError, match="cannot open bag"):
        bags.bag_info(bad)
    sq = tmp_path / "sq"
    _write_frames(sq, 3, "sqlite3")
    db = next(sq.glob("*.db3"))
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    with pytest.raises(bags.BagError):
        list(bags.iter_raw(sq))


GARBAGE_COCO = {
    "not json": "hello", "top-level list": "[]", "binary": b"\xff\xfe\x00garbage", "missing list": '{"images": []}',
    "image without id": json.dumps({"images": [{"file_name": "a.png"}], "annotations": [], "categories": []}),
    "string width": json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": "x", "height": 2}],
                                "annotations": [], "categories": []}),
    "annotation without image": json.dumps({"images": [], "annotations": [{"bbox": [1, 2, 3, 4]}],
                                            "categories": [{"id": 1, "name": "c"}]}),
    "category without id": json.dumps({"images": [], "annotations": [], "categories": [{"name": "c"}]}),
    "entries not objects": json.dumps({"images": [1], "annotations": ["a"], "categories": [None]}),
    "deeply nested": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("name", sorted(GARBAGE_COCO))
def test_garbage_coco_json_clear_error(tmp_path, name):
    import importlib
    import sys

    if "active_o3_training" not in sys.modules:
        try:
            importlib.import_module("active_o3_training")
        except ImportError:
            sys.path.insert(0, str(REPO))
            sys.modules["active_o3_training"] = importlib.import_module("training")
    from active_o3_training.data.coco import load_coco_json
    from active_o3_training.eval_data import EvalError, load_coco

    p = tmp_path / "ann.json"
    v = GARBAGE_COCO[name]
    p.write_bytes(v if isinstance(v, bytes) else v.encode())
    with pytest.raises(ValueError) as ei:
        load_coco_json(p)
    assert str(p) in str(ei.value)
    with pytest.raises(EvalError):
        load_coco(p, tmp_path)


# -- static security rules ----------------------------------------------------------------
def _py_files() -> list[Path]:
    out = []
    for top in ("active_o3_ros", "training", "benchmarks", "scripts", "tests", "launch"):
        out += [p for p in (REPO / top).rglob("*.py") if ".venv" not in p.parts]
    return out


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def test_security_rules_hold_in_the_repo():
    problems = []
    for path in _py_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "marshal") for n in names):
                    problems.append(f"{rel}:{node.lineno}: imports a pickle-like module")
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else (f.id if isinstance(f, ast.Name) else "")
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            shell = _kw(node, "shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                problems.append(f"{rel}:{node.lineno}: shell= other than False")
            if owner == "torch" and name == "load":
                wo = _kw(node, "weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
            if owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load"):
                problems.append(f"{rel}:{node.lineno}: yaml.{name} (use yaml.safe_load)")
            if owner == "np" and name == "load":
                ap = _kw(node, "allow_pickle")  # explicit: the default has changed across numpy versions
                if not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(f"{rel}:{node.lineno}: np.load without an explicit allow_pickle=False")
            if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
                problems.append(f"{rel}:{node.lineno}: {f.id}()")
            if owner == "os" and name in ("system", "popen"):
                problems.append(f"{rel}:{node.lineno}: os.{name}")
            trc = _kw(node, "trust_remote_code")
            if isinstance(trc, ast.Constant) and trc.value is True:
                problems.append(f"{rel}:{node.lineno}: trust_remote_code=True hard-coded")
        for node in ast.walk(tree):  # defaults of trust_remote_code parameters must be False
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults \
                    + node.args.kw_defaults
                for a, d in zip(args, defaults):
                    if a.arg == "trust_remote_code" and isinstance(d, ast.Constant) and d.value is not False:
                        problems.append(f"{rel}:{node.lineno}: trust_remote_code defaults to {d.value!r}")
    assert not problems, "\n".join(problems)


def test_trust_remote_code_is_off_by_default_everywhere():
    from active_o3_ros.core.config import PARAMETER_INDEX, BackendConfig, PerceptionConfig

    assert PARAMETER_INDEX["trust_remote_code"].default is False
    assert BackendConfig().trust_remote_code is False
    assert PerceptionConfig.from_flat({}).backend.trust_remote_code is False
    from active_o3_ros.core.config import ConfigError

    with pytest.raises(ConfigError, match="trust_remote_code"):
        PerceptionConfig.from_flat({"trust_remote_code": "sometimes"})
