"""The launch file, the YAML and the node's declared parameters agree (launch is not
installable here, so the launch file is parsed with ``ast``, never imported)."""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from active_o3_ros.core.config import PerceptionConfig
from active_o3_ros.ros.node import ALL_PARAMETERS, ROS_PARAMETER_INDEX

REPO = Path(__file__).resolve().parents[2]
PARAMS = {p.name: p for p in ALL_PARAMETERS}


def _launch_tree():
    return ast.parse((REPO / "launch" / "perceive.launch.py").read_text())


def _dict_assign(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in launch file")


def test_launch_arguments_map_to_declared_parameters():
    tree = _launch_tree()
    args = _dict_assign(tree, "PARAM_ARGS")
    typed = {k: v for k, v in ast.literal_eval(
        ast.unparse(next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                         and getattr(n.targets[0], "id", "") == "TYPED")).replace("int", "'int'").replace("float", "'float'")
    ).items()}
    assert len(args) >= 12
    for arg, (param, desc) in args.items():
        assert param in PARAMS, f"launch argument {arg} maps to unknown parameter {param}"
        assert desc
        t = PARAMS[param].type
        expect = {bool: "bool", int: "int", float: "float", str: None}[t]
        assert typed.get(param) == expect, f"{param}: launch converts to {typed.get(param)}, node declares {t}"
    # the list: model, device, target, image topic, namespace, K, thresholds, qos, debug image
    for needed in ("model", "device", "instruction", "max_regions", "score_threshold", "qos_reliability",
                   "publish_debug_image"):
        assert needed in {p for p, _ in args.values()}
    declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "DeclareLaunchArgument" and n.args and isinstance(n.args[0], ast.Constant)}
    assert {"params_file", "namespace", "image"} <= declared
    src = (REPO / "launch" / "perceive.launch.py").read_text()
    assert "perceive.yaml" in src and "fastdds_shm.xml" in src


def _lifecycle_node_call():
    calls = [n for n in ast.walk(_launch_tree()) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") == "LifecycleNode"]
    assert len(calls) == 1
    return {kw.arg: kw.value for kw in calls[0].keywords}


def installed_executables() -> dict[str, str]:
    """name -> module of every executable CMakeLists.txt installs into lib/active_o3_ros."""
    text = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"set\(ACTIVE_O3_EXECUTABLES(.*?)\)", text, re.S)
    assert block, "ACTIVE_O3_EXECUTABLES not found in CMakeLists.txt"
    return dict(pair.split("=", 1) for pair in re.findall(r'"([^"]+)"', block.group(1)))


def test_launch_node_names_an_installed_executable_and_remaps_image():
    kw = _lifecycle_node_call()
    assert ast.literal_eval(kw["package"]) == "active_o3_ros" and ast.literal_eval(kw["name"]) == "active_o3"
    exe = ast.literal_eval(kw["executable"])
    assert exe in installed_executables()
    # the camera is a remapping of the node's relative input, not a parameter
    remaps = kw["remappings"]
    assert isinstance(remaps, ast.List) and len(remaps.elts) == 1
    src, dst = remaps.elts[0].elts
    assert ast.literal_eval(src) == "image" and ast.unparse(dst) == "LaunchConfiguration('image')"
    assert "image_topic" not in PARAMS
    # how launch_ros resolves it (ExecutableInPackage): <package prefix>/lib/<package>/<executable>
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix("active_o3_ros")) / "lib" / "active_o3_ros" / exe
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing: launch_ros could not start the node"


def test_installed_executables_run_their_module():
    from ament_index_python.packages import get_package_prefix

    lib = Path(get_package_prefix("active_o3_ros")) / "lib" / "active_o3_ros"
    for exe, module in installed_executables().items():
        importlib.import_module(module)
        out = subprocess.run([str(lib / exe), "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (exe, out.stderr[-2000:])
        assert "usage" in out.stdout.lower(), exe


def test_yaml_holds_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "perceive.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == set(PARAMS)
    for name, value in values.items():
        assert value == PARAMS[name].default and type(value) is PARAMS[name].type, name
    cfg = PerceptionConfig.from_yaml(REPO / "config" / "perceive.yaml")
    assert cfg.backend.sensing == "small_policy" and cfg.backend.task == "text"
    assert ROS_PARAMETER_INDEX["auto_activate"].default is True


def test_shipped_files_are_found_without_a_sourced_ros_environment(tmp_path):
    """A venv user who never sourced a setup script (no AMENT_PREFIX_PATH) still gets the
    node's default parameters and message definitions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMENT_")}
    code = ("from active_o3_ros.ros.env import data_path; "
            "print(data_path('config/perceive.yaml')); print(data_path('msg'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    found = out.stdout.split()
    assert len(found) == 2 and all(Path(p).exists() for p in found), out.stdout
