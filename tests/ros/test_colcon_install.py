"""`colcon build` of this repository, for real: the ament install layout a ROS user gets.

The source tree is copied into ``<tmp>/ws/src/active_o3_ros`` (as a ROS workspace holds it;
building in place would put the venv's include dirs inside the source directory, which CMake
refuses), built with colcon into a temporary build/install space, and the install's
``local_setup.bash`` is sourced.  Then, from that environment only:

* every executable the launch file may name resolves the way launch_ros and ``ros2 run``
  resolve it (``<package prefix>/lib/<package>/<executable>``, prefix from the ament index);
* the node and the camera source are started *from there*, the node in a namespace with its
  relative input remapped, and detections arrive over DDS on the namespaced output.

launch/launch_ros and ros2cli are not installable here, so the launch file itself is checked
against this install by ``test_launch_config.py`` (node, executable, remappings).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rosutil import Probe, REPO, ROS_TESTS, stop

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_launch_config import _lifecycle_node_call, installed_executables  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

COLCON = Path(sys.prefix) / "colcon" / "bin" / "colcon"
PKG = "active_o3_ros"
COPY_IGNORE = shutil.ignore_patterns(".venv", "build", "install", "log", "artifacts", "runs", ".git",
                                     "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


def _sourced_env(setup: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment after ``source setup`` in bash (what a ROS user's shell has)."""
    out = subprocess.run(["bash", "-c", f'source "{setup}" && env -0'], env=base, capture_output=True,
                         timeout=60, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    if not COLCON.is_file():
        pytest.fail(f"colcon not installed at {COLCON}: run `make setup` (scripts/setup_env.sh)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / PKG, ignore=COPY_IGNORE)
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT_", "COLCON", "CMAKE_PREFIX"))}
    env.update(PATH=venv_bin + os.pathsep + env.get("PATH", ""), AMENT_PREFIX_PATH=sys.prefix,
               CMAKE_PREFIX_PATH=sys.prefix, VIRTUAL_ENV=sys.prefix)
    env.pop("PYTHONPATH", None)
    cmd = [str(COLCON), "--log-base", str(ws / "log"), "build", "--base-paths", str(ws / "src"),
           "--build-base", str(ws / "build"), "--install-base", str(ws / "install"),
           "--event-handlers", "console_direct-", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
           "-DPython3_FIND_VIRTUALENV=ONLY", "-DBUILD_TESTING=OFF"]
    run = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    prefix = ws / "install" / PKG
    sourced = _sourced_env(prefix / "share" / PKG / "local_setup.bash", env)
    return prefix, sourced


def _py(env: dict[str, str], code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_install_layout_resolves_like_launch_ros(colcon_install):
    prefix, env = colcon_install
    # the ament index of the sourced shell finds this install (not the venv's copy)
    assert Path(_py(env, "from ament_index_python.packages import get_package_prefix as p; "
                        f"print(p('{PKG}'))")) == prefix
    # ... and Python imports the installed package and its generated messages from it
    files = _py(env, "import active_o3_ros.ros.node as n, active_o3_ros.msg as m; print(n.__file__); print(m.__file__)")
    assert all(Path(f).is_relative_to(prefix) for f in files.splitlines()), files
    share = prefix / "share" / PKG
    assert (share / "launch" / "perceive.launch.py").is_file() and (share / "config" / "perceive.yaml").is_file()
    assert (share / "package.xml").is_file()
    lib = prefix / "lib" / PKG
    exes = installed_executables()
    import ast

    assert ast.literal_eval(_lifecycle_node_call()["executable"]) in exes
    for exe in exes:
        path = lib / exe
        assert path.is_file() and os.access(path, os.X_OK), f"{path}: ros2 run {PKG} {exe} would fail"
        first = path.read_text().splitlines()[0]
        assert first == f"#!{sys.executable}", first


def test_installed_node_remapped_in_a_namespace_publishes_over_dds(colcon_install, ros_domain, tmp_path):
    prefix, sourced = colcon_install
    env = dict(sourced)
    for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE", "OMP_NUM_THREADS"):
        if k in os.environ:
            env[k] = os.environ[k]
    # the test task module (a plugin) is the only thing taken from outside the install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROS_TESTS)) if p)
    env.update(PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    lib = prefix / "lib" / PKG
    node_log, cam_log = tmp_path / "node.log", tmp_path / "cam.log"
    node = subprocess.Popen(
        [str(lib / "active_o3_node"), "--ros-args", "-r", "__ns:=/robot1", "-r", "image:=/cam/front",
         "-p", "sensing_backend:=tiling", "-p", "sensing_options:='{\"rows\": 1, \"cols\": 2}'",
         "-p", "task_module:=blob", "-p", "plugins:=ros_test_backends", "-p", "qos_reliability:=reliable",
         "-p", "max_regions:=2", "-p", "crop_size:=160", "-p", "instruction:=bright blobs"],
        env=env, stdout=open(node_log, "wb"), stderr=subprocess.STDOUT, cwd="/")
    probe = Probe()
    cam = None
    try:
        probe.subscribe(DetectionArray, "/robot1/active_o3/detections")
        instr = probe.publisher(String, "/robot1/active_o3/instruction")
        probe.wait_for(lambda: probe.node.count_subscribers("/cam/front") > 0, 60,
                       "the node subscribed to the remapped input /cam/front")
        assert probe.node.count_subscribers("/robot1/image") == 0 and probe.node.count_subscribers("/image") == 0
        probe.wait_for(lambda: instr.get_subscription_count() > 0, 30, "namespaced ~/instruction")
        instr.publish(String(data="white squares"))
        time.sleep(1.0)
        cam = subprocess.Popen(
            [str(lib / "camera_source"), "synthetic:320x240", "--topic", "/cam/front", "--fps", "4",
             "--max-frames", "4", "--depth", "10", "--wait-subscribers", "2"],
            env=env, stdout=open(cam_log, "wb"), stderr=subprocess.STDOUT, cwd="/")
        assert cam.wait(60) == 0, cam_log.read_text()
        probe.wait_for(lambda: len(probe.got("/robot1/active_o3/detections")) >= 1, 30, "namespaced detections")
        msgs = probe.got("/robot1/active_o3/detections")
        assert all(m.instruction == "white squares" for m in msgs)
        assert sum(len(m.detections) for m in msgs) >= 1
        assert node.poll() is None
    finally:
        if cam is not None:
            stop(cam)
        code = stop(node)
        probe.close()
    log = node_log.read_text()
    assert code == 0, log
    assert "listening on /cam/front" in log, log
