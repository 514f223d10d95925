"""Build/install contract: generated messages, package layout, CI wiring, DDS profile.

These guard the known pitfalls of the ROS wheels and message build (messages deleted by a same-named pip distribution,
an ``__init__`` that stops merging source and generated halves, a CI script that passes with no
tests, a Fast DDS profile that silently falls back to defaults).
"""
from __future__ import annotations

import ast
import filecmp
import importlib.metadata as md
import importlib.util
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FASTDDS_XML = ROOT / 'config' / 'fastdds_shm.xml'
NS = {'f': 'http://www.eprosima.com'}


# ------------------------------------------------------------------ generated messages
def test_messages_round_trip_through_rclpy_serialization() -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    from active_o3_ros.msg import (Detection, DetectionArray, InstanceMask, InstanceMaskArray,
                                   ZoomRegion, ZoomRegionArray)

    dets = DetectionArray(image_width=1920, image_height=1080, instruction='person, dog',
                          mode='parallel', model_calls=2, sensing_status='ok', total_time=0.25)
    dets.header.frame_id = 'camera'
    dets.header.stamp.sec = 12
    dets.detections = [Detection(label='person', score=0.75, x_min=1.5, y_min=2.0, x_max=30.25,
                                 y_max=40.0, region_index=1, mask_index=-1)]
    regions = ZoomRegionArray(image_width=1920, image_height=1080,
                              regions=[ZoomRegion(x_min=0.0, y_min=0.0, x_max=100.0, y_max=50.0,
                                                  rank=0, label='crowd', score=1.0)])
    masks = InstanceMaskArray(image_width=4, image_height=3, masks=[InstanceMask(
        detection_index=0, label='person', x_offset=1, y_offset=1, width=2, height=2,
        data=[0, 255, 255, 0])])

    for msg in (dets, regions, masks):
        raw = serialize_message(msg)
        assert isinstance(raw, bytes) and len(raw) > 0
        back = deserialize_message(raw, type(msg))
        assert back == msg, type(msg).__name__
    assert deserialize_message(serialize_message(dets), DetectionArray).detections[0].label == 'person'


def test_generated_and_source_halves_merge_into_one_package() -> None:
    """Run from outside the repo: the venv alone must provide both halves."""
    code = textwrap.dedent('''
        import active_o3_ros, active_o3_ros.msg, active_o3_ros.core
        paths = [p.rstrip("/") for p in active_o3_ros.__path__]
        print(len(paths), active_o3_ros.msg.__file__, active_o3_ros.core.__file__)
    ''')
    out = subprocess.run([sys.executable, '-c', code], cwd='/', capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    n, msg_file, core_file = out.stdout.split()
    assert int(n) >= 2
    assert 'site-packages' in msg_file                      # rosidl install (venv prefix)
    assert Path(core_file).resolve().is_relative_to(ROOT)   # editable source tree


# ------------------------------------------------------------------ packaging
def _setup_py_kwargs() -> dict[str, ast.expr]:
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'setup':
            return {kw.arg: kw.value for kw in node.keywords if kw.arg}
    raise AssertionError('no setup(...) call in setup.py')


def test_distribution_name_differs_from_the_rosidl_package() -> None:
    name = ast.literal_eval(_setup_py_kwargs()['name'])
    assert name == 'active-o3-ros-py'
    norm = lambda s: s.replace('-', '_').lower()  # noqa: E731
    assert norm(name) != 'active_o3_ros', 'pip would delete the generated messages'
    dist = md.distribution('active-o3-ros-py')   # editable install present
    assert norm(dist.metadata['Name']) == 'active_o3_ros_py'


def test_console_scripts_declared() -> None:
    eps = {ep.name: ep.value for ep in md.distribution('active-o3-ros-py').entry_points
           if ep.group == 'console_scripts'}
    assert eps == {
        'active-o3': 'active_o3_ros.cli:main',
        'active-o3-node': 'active_o3_ros.ros.node:main',
        'active-o3-camera': 'active_o3_ros.ros.camera_source:main',
        'active-o3-bag': 'active_o3_ros.ros.bags:main',
        'active-o3-listen': 'active_o3_ros.ros.listener:main',
        'active-o3-demo': 'active_o3_ros.ros.demo:main',
        'active-o3-train': 'active_o3_training.cli:main',
        'active-o3-eval': 'active_o3_training.evaluate:main',
    }


def test_package_init_is_only_extend_path_and_lazy_table() -> None:
    src = ROOT / 'active_o3_ros' / '__init__.py'
    tree = ast.parse(src.read_text())
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # docstring
    assert ast.unparse(body[0]) == "__path__ = __import__('pkgutil').extend_path(__path__, __name__)"
    allowed_rest = {'_LAZY', '__getattr__', '__all__', '__dir__'}
    lazy: dict[str, str] = {}
    for node in body[1:]:
        if isinstance(node, ast.Assign):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            assert names <= allowed_rest, ast.unparse(node)
            if names == {'_LAZY'}:
                lazy = ast.literal_eval(node.value)
        elif isinstance(node, ast.FunctionDef):
            assert node.name in allowed_rest, node.name
        else:
            raise AssertionError(f'unexpected statement in __init__.py: {ast.unparse(node)[:80]}')
    # The lazy table must not go stale: every entry resolves.
    import active_o3_ros
    for attr, module in lazy.items():
        assert importlib.util.find_spec(module) is not None, module
        assert getattr(active_o3_ros, attr) is not None, attr


def test_installed_init_matches_source() -> None:
    """CMake installs a copy of __init__.py next to the messages; it must be the current one."""
    import active_o3_ros.msg
    installed = Path(active_o3_ros.msg.__file__).resolve().parents[1] / '__init__.py'
    assert filecmp.cmp(installed, ROOT / 'active_o3_ros' / '__init__.py', shallow=False), \
        f'{installed} is stale: run `make setup`'


# ------------------------------------------------------------------ CI wiring
@pytest.mark.slow
def test_ci_run_fails_when_no_tests_are_collected() -> None:
    """`.ci/run` -> `make test` (setup is idempotent and fast) -> pytest exit 5 -> failure."""
    # SKIP_VLLM: this checks the main suite's wiring; the vLLM half runs once, in the outer run
    env = dict(os.environ, PYTEST_ARGS='tests/test_build.py -k no_such_test_zzz -p no:cacheprovider', SKIP_VLLM='1')
    out = subprocess.run([str(ROOT / '.ci' / 'run')], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert 'no tests' in text and 'FAILED' in text, text
    # Idempotent set-up: the environment was already built, nothing is rebuilt.
    assert 'environment ready' in text and 'building messages' not in text, text
    assert 'installing pinned requirements' not in text, text
    # ... and the same target runs the vLLM tests in their own environment afterwards
    make_test = (ROOT / 'Makefile').read_text().split('\ntest:', 1)[1].split('\n\n', 1)[0]
    assert 'scripts/test_vllm.sh' in make_test and 'SKIP_VLLM' in make_test


def _need_space(gb: int, venv: Path) -> subprocess.CompletedProcess:
    script = (f'ROOT={ROOT}; VENV={venv}; log() {{ :; }}; die() {{ echo "ERROR: $*" >&2; exit 1; }}; '
              f'source {ROOT}/scripts/env_lib.sh; need_space {gb} "installing the test env"; echo enough')
    return subprocess.run(['bash', '-c', script], capture_output=True, text=True, timeout=30)


def test_setup_stops_with_a_clear_message_when_the_disk_is_too_full(tmp_path: Path) -> None:
    # A full disk once failed CI half-way through pip with only "[Errno 28]": the setup scripts
    # check the free space first (on the venv's disk, whose folder need not exist yet, and TMPDIR).
    ok = _need_space(0, tmp_path / 'not' / 'yet' / 'venv')
    assert ok.returncode == 0 and 'enough' in ok.stdout, ok.stderr
    full = _need_space(10 ** 6, tmp_path / 'venv')
    assert full.returncode == 1 and 'enough' not in full.stdout
    assert 'installing the test env needs about 1000000 GB free' in full.stderr
    assert 'MB are free' in full.stderr


# ------------------------------------------------------------------ Fast DDS profile
def test_fastdds_profile_is_shm_plus_loopback_udp() -> None:
    root = ET.parse(FASTDDS_XML).getroot()
    transports = {t.findtext('f:transport_id', namespaces=NS): t
                  for t in root.iterfind('.//f:transport_descriptor', NS)}
    kinds = {tid: t.findtext('f:type', namespaces=NS) for tid, t in transports.items()}
    assert sorted(kinds.values()) == ['SHM', 'UDPv4']
    shm = next(t for t in transports.values() if t.findtext('f:type', namespaces=NS) == 'SHM')
    assert int(shm.findtext('f:segment_size', namespaces=NS)) >= 16 * 1024 * 1024
    udp = next(t for t in transports.values() if t.findtext('f:type', namespaces=NS) == 'UDPv4')
    addrs = [a.text for a in udp.iterfind('f:interfaceWhiteList/f:address', NS)]
    assert addrs == ['127.0.0.1']
    part = root.find('.//f:participant', NS)
    assert part is not None and part.get('is_default_profile') == 'true'
    assert part.findtext('f:rtps/f:useBuiltinTransports', namespaces=NS) == 'false'
    used = [t.text for t in part.iterfind('f:rtps/f:userTransports/f:transport_id', NS)]
    assert sorted(used) == sorted(transports)


_PUB = '''
import sys, time, rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('build_test_pub')
pub = node.create_publisher(Image, 'build_test_image', 1)
msg = Image(height=1080, width=1920, encoding='rgb8', step=1920 * 3)
msg.data = bytes(range(256)) * (1920 * 1080 * 3 // 256)
end = time.monotonic() + 60
while time.monotonic() < end:
    pub.publish(msg)
    rclpy.spin_once(node, timeout_sec=0.2)
'''

_SUB = '''
import sys, rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('build_test_sub')
got = []
node.create_subscription(Image, 'build_test_image', got.append, 1)
import time
end = time.monotonic() + 60
while not got and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.2)
m = got[0] if got else None
print('RECEIVED', len(m.data) if m else 0, bytes(m.data[:4]).hex() if m else '', flush=True)
'''


@pytest.mark.ros
def test_fastdds_profile_loads_and_carries_a_1080p_frame_between_processes() -> None:
    """Real DDS between two processes with our profile; Fast DDS must report no XML errors."""
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_XML),
               RMW_IMPLEMENTATION='rmw_fastrtps_cpp')
    sub = subprocess.Popen([sys.executable, '-c', _SUB], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    pub = subprocess.Popen([sys.executable, '-c', _PUB], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        out, err = sub.communicate(timeout=90)
    finally:
        pub.kill()
        _, pub_err = pub.communicate(timeout=30)
        if sub.poll() is None:
            sub.kill()
    assert 'XMLPARSER' not in err + pub_err, err + pub_err
    assert out.split()[:3] == ['RECEIVED', str(1920 * 1080 * 3), '00010203'], out + err


# ------------------------------------------------------------------ package.xml run dependencies
def test_package_xml_declares_every_ros_package_the_code_imports() -> None:
    """rosdep installs what package.xml names: every ROS package imported by the shipped code
    (a module with a ``share/<name>/package.xml`` in the ROS prefix) must be an exec_depend."""
    prefix = Path(os.environ.get('AMENT_PREFIX_PATH', sys.prefix).split(os.pathsep)[-1])
    declared = {e.text.strip() for e in ET.parse(ROOT / 'package.xml').getroot()
                if e.tag in ('exec_depend', 'depend') and e.text}
    imported: dict[str, str] = {}
    for path in sorted((ROOT / 'active_o3_ros').rglob('*.py')):
        if 'testing' in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                top = name.split('.')[0]
                if top != 'active_o3_ros' and (prefix / 'share' / top / 'package.xml').is_file():
                    imported.setdefault(top, str(path.relative_to(ROOT)))
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs'} <= set(imported)
    missing = {k: v for k, v in imported.items() if k not in declared}
    assert not missing, f'package.xml lacks exec_depend for {missing}'


# ------------------------------------------------------------------ the house: core owns its ports
def test_core_imports_no_backend_and_no_ros() -> None:
    """The ROS-free core (interfaces, geometry, pipeline stages, config, rewards, metrics) never
    imports a backend, the registry or rclpy: the doors do the lookup."""
    code = textwrap.dedent('''
        import importlib, pkgutil, sys
        import active_o3_ros.core as core
        for m in pkgutil.iter_modules(core.__path__):
            importlib.import_module(f"active_o3_ros.core.{m.name}")
        bad = sorted(m for m in sys.modules if m.startswith(("active_o3_ros.backends", "active_o3_ros.ros", "rclpy")))
        print(bad)
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd='/')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]', out.stdout


def test_runtime_never_imports_the_test_models() -> None:
    """Tiny random models live in active_o3_ros.testing; core, backends and ros never import it."""
    problems = []
    for path in sorted((ROOT / 'active_o3_ros').rglob('*.py')):
        if 'testing' in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            if any(n.startswith('active_o3_ros.testing') for n in names):
                problems.append(f'{path.relative_to(ROOT)}:{node.lineno}')
    assert not problems, problems
