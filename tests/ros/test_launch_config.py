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

import pytest

from active_o3_ros.core.config import ConfigError, PerceptionConfig
from active_o3_ros.ros.node import ALL_PARAMETERS, ROS_PARAMETER_INDEX

REPO = Path(__file__).resolve().parents[2]
PARAMS = {p.name: p for p in ALL_PARAMETERS}


def _launch_tree():
    return ast.parse((REPO / "launch" / "perceive.launch.py").read_text())


def _assigned(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in launch file")


def test_launch_arguments_map_to_declared_parameters():
    tree = _launch_tree()
    args = _assigned(tree, "PARAM_ARGS")
    assert len(args) >= 12 and len(set(args)) == len(args)
    for name in args:
        assert name in PARAMS, f"launch argument {name} is not a node parameter"
    # the list: model, device, target, image topic, namespace, K, thresholds, qos, debug image
    for needed in ("model", "device", "instruction", "max_regions", "score_threshold", "qos_reliability",
                   "publish_debug_image", "sensing_model"):
        assert needed in args
    declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "DeclareLaunchArgument" and n.args and isinstance(n.args[0], ast.Constant)}
    assert {"params_file", "namespace", "image"} <= declared
    src = (REPO / "launch" / "perceive.launch.py").read_text()
    assert "perceive.yaml" in src and "fastdds_shm.xml" in src
    # descriptions and types come from the parameter table, not from text of the launch file's own
    assert "PARAMETERS[name].help()" in src and "PARAMETERS[name].coerce(text)" in src


def test_launch_values_and_descriptions_come_from_the_parameter_table():
    """What the launch file does with an argument (``PARAMETERS[name].coerce(text)``, checked
    above in its source): the node's own type and range check; its help names the registry's
    backends."""
    params = {p.name: p for p in ALL_PARAMETERS}
    assert params["max_regions"].coerce("2") == 2 and params["compressed"].coerce("true") is True
    assert params["score_threshold"].coerce("0.25") == 0.25
    with pytest.raises(ConfigError, match="max_regions"):
        params["max_regions"].coerce("0")
    from active_o3_ros.backends.base import available_backends

    assert all(name in params["sensing_backend"].help() for name in available_backends()["sensing"])
    assert all(name in params["task_module"].help() for name in available_backends()["task"])


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


def test_yaml_is_generated_from_the_parameter_table():
    """config/perceive.yaml is exactly what `active-o3-node --print-params-yaml` prints: every
    default and description, and the registry's backend names, come from one table."""
    out = subprocess.run([sys.executable, "-m", "active_o3_ros.ros.node", "--print-params-yaml"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr  # a fresh interpreter: the shipped registry, no test plugins
    assert (REPO / "config" / "perceive.yaml").read_text() == out.stdout, (
        "config/perceive.yaml is stale: regenerate it with "
        "`active-o3-node --print-params-yaml > config/perceive.yaml`")
    assert "cascade" in out.stdout and "qwen_vllm" in out.stdout


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
