"""The ``active_o3`` lifecycle node: a thin ROS adapter over :class:`ActivePerception`.

Lifecycle (as yolo_ros): *configure* validates parameters and loads the models, *activate*
subscribes to images and starts the worker, *deactivate* stops both, *cleanup* frees the
models.  ``auto_activate`` (default true) does configure+activate at start for users
without a lifecycle manager.

Latest frame wins: the image callback only stores the message in a one-slot buffer; a
worker thread converts and processes it.  A newer frame arriving while one is pending
replaces it (counted as dropped), so memory stays bounded however slow the model is, and
the published detections are always about the most recent frame.

Topics (relative to the node, so ``/active_o3/...`` by default; namespace/remap as usual):
``~/detections`` (DetectionArray), ``~/regions`` (ZoomRegionArray), ``~/masks``
(InstanceMaskArray, only for task modules with masks), ``~/debug_image`` (by parameter),
``/diagnostics`` (diagnostic_msgs/DiagnosticArray: fps, latency per stage, drops, rejects,
failures).  Inputs: ``image`` (sensor_msgs/Image, a *relative* name: remap it, e.g.
``-r image:=/camera/image_raw``; with ``compressed`` the node subscribes to the remapped name
plus ``/compressed``, as image_transport does) and ``~/instruction`` (std_msgs/String).

Security: the parameters that choose code or model files (:data:`CODE_PARAMETERS`) are
read-only after start, so no participant on the DDS graph can make the node import a module
or load other weights; plugins are imported once, at configure, from their start-time value;
model hubs are offline unless ``allow_hub_downloads`` is set at start.

Parameters: every entry of :data:`active_o3_ros.core.config.PARAMETERS` (same names,
defaults, descriptions and ranges as the CLI and YAML) plus :data:`ROS_PARAMETERS`.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import sys
import threading
import time
from typing import Any, Sequence

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter as RosParameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from active_o3_ros.backends.base import build_pipeline  # the registry: backend names, the door's lookup
from active_o3_ros.core.config import PARAMETER_INDEX, PARAMETERS, ConfigError, Parameter, PerceptionConfig
from active_o3_ros.ros.env import data_path, publish_unless_shut_down, ros_defaults
from active_o3_ros.ros import convert
from active_o3_ros.ros.frames import FrameProcessor, short
from active_o3_ros.ros.images import DEFAULT_MAX_PIXELS

NODE_NAME = "active_o3"

#: Parameters of the ROS adapter only (the pipeline's are in core.config.PARAMETERS).
ROS_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("compressed", False, "Subscribe to sensor_msgs/CompressedImage (jpeg/png) on '<image>/compressed' "
              "instead of raw Image on 'image' (remap 'image' to choose the camera)."),
    Parameter("qos_reliability", "best_effort", "Image subscription reliability; best_effort matches every "
              "camera driver, reliable only reliable publishers.", choices=("best_effort", "reliable")),
    Parameter("qos_depth", 1, "Image subscription queue depth (1: latest frame only).", min_value=1, max_value=100),
    Parameter("publish_debug_image", False, "Publish ~/debug_image: the frame with regions and detections drawn."),
    Parameter("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", min_value=0.1, max_value=60.0),
    Parameter("auto_activate", True, "Configure and activate at start (no lifecycle manager needed)."),
    Parameter("max_image_pixels", DEFAULT_MAX_PIXELS, "Largest accepted width*height; bigger frames are "
              "skipped with a warning (default 4096x4096: 4K yes, 8K no).", min_value=1, max_value=16384 * 16384),
    Parameter("reuse_identical_frames", True, "A frame bit-identical to the previous one (robot standing still, "
              "repeated buffer) gets the previous result with its own header, without running the models."),
    Parameter("plugins", "", "Comma-separated Python modules imported at configure; they may register extra "
              "backends (register_sensing / register_task). Read-only after start."),
    Parameter("allow_hub_downloads", False, "Let model backends download from a model hub (off: hub offline "
              "mode, local files only). Read-only after start."),
)
ROS_PARAMETER_INDEX = {p.name: p for p in ROS_PARAMETERS}
ALL_PARAMETERS: tuple[Parameter, ...] = PARAMETERS + ROS_PARAMETERS
#: Parameters that choose which code runs or which model files load: set at start only (command
#: line, params file, launch), read-only afterwards, so a SetParameters call from another
#: participant can neither import a module nor swap the weights.
CODE_PARAMETERS = frozenset({"sensing_backend", "task_module", "model", "sensing_model", "task_model",
                             "trust_remote_code", "sensing_options", "task_options", "plugins",
                             "allow_hub_downloads"})
#: Changing these while configured only takes effect at the next configure (models are reloaded).
RELOAD_PARAMETERS = {"device", "dtype"}
#: These take effect at the next activate (the subscription is recreated).
REACTIVATE_PARAMETERS = {"compressed", "qos_reliability", "qos_depth", "publish_debug_image", "max_image_pixels",
                         "reuse_identical_frames"}
#: The relative input name; integrators remap it (``-r image:=/camera/image_raw``).
IMAGE_INPUT = "image"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def descriptor(p: Parameter) -> ParameterDescriptor:
    """ParameterDescriptor with description, ranges and choices from one Parameter row."""
    d = ParameterDescriptor(name=p.name, description=p.description, read_only=p.name in CODE_PARAMETERS)
    allowed = p.allowed()
    if allowed:
        d.additional_constraints = "one of: " + ", ".join(map(str, allowed))
    if p.type is int and (p.min_value is not None or p.max_value is not None):
        d.integer_range = [IntegerRange(from_value=int(p.min_value if p.min_value is not None else -2**63),
                                        to_value=int(p.max_value if p.max_value is not None else 2**63 - 1), step=0)]
    elif p.type is float and (p.min_value is not None or p.max_value is not None):
        d.floating_point_range = [FloatingPointRange(
            from_value=float(p.min_value if p.min_value is not None else -sys.float_info.max),
            to_value=float(p.max_value if p.max_value is not None else sys.float_info.max), step=0.0)]
    return d


#: /diagnostics ``fps`` counts the frames finished over this many wall seconds (or since activate).
FPS_WINDOW_S = 10.0


class LatestSlot:
    """A one-item buffer where a newer item replaces the pending one (latest frame wins)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store ``item``; True when it replaced a pending one (which is then dropped)."""
        with self._cv:
            replaced = self._item is not None
            self._item = item
            self._cv.notify()
            return replaced

    def take(self, timeout: float) -> Any:
        with self._cv:
            self._cv.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> bool:
        """Stop handing out items; True when a pending one was discarded."""
        with self._cv:
            self._closed = True
            discarded, self._item = self._item is not None, None
            self._cv.notify_all()
            return discarded


class ActiveO3Node(LifecycleNode):
    """See the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in ALL_PARAMETERS:
            try:
                self.declare_parameter(p.name, p.default, descriptor(p))
            except Exception as exc:  # e.g. a YAML value of the wrong type
                raise ConfigError(f"parameter {p.name!r}: {exc} (expected a {p.type.__name__}, "
                                  f"default {p.default!r})") from exc
        self._plugins = str(self.get_parameter("plugins").value)  # start-time value, never changed
        if not self.get_parameter("allow_hub_downloads").value:
            hub_offline()
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        from diagnostic_msgs.msg import DiagnosticArray

        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._config: PerceptionConfig | None = None
        self._instruction = str(self.get_parameter("instruction").value)
        self._slot = LatestSlot()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._image_sub: Any = None
        self._instruction_sub: Any = None
        self._pubs: dict[str, Any] = {}
        # one frame processor for the node's life: its counters survive configure/activate
        self._frames = FrameProcessor(None, convert.rclpy_types())
        self._state = "unconfigured"
        self._last_diag = (time.monotonic(), 0, 0, 0, 0)
        self._active_since = time.monotonic()
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics_period").value), self._publish_diag)
        if self.get_parameter("auto_activate").value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # -- parameters --------------------------------------------------------------------
    @property
    def _pipeline(self) -> Any:
        """The loaded pipeline (None until configure); the frame processor holds it."""
        return self._frames.pipeline

    def _flat(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        flat = {p.name: self.get_parameter(p.name).value for p in PARAMETERS}
        flat.update({k: v for k, v in (changes or {}).items() if k in PARAMETER_INDEX})
        return flat

    def _validate_parameters(self, params: list[RosParameter]) -> SetParametersResult:
        """Reject bad values with the same message the CLI/YAML would give."""
        changes = {p.name: p.value for p in params}
        try:
            for name, value in changes.items():
                if name in ROS_PARAMETER_INDEX:
                    ROS_PARAMETER_INDEX[name].coerce(value)
            if any(k in PARAMETER_INDEX for k in changes):
                cfg = PerceptionConfig.from_flat(self._flat(changes))
                from active_o3_ros.core.prompts import normalize_instruction

                normalize_instruction(cfg.instruction)
        except (ConfigError, ValueError, ImportError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[RosParameter]) -> None:
        names = {p.name for p in params}
        if "diagnostics_period" in names:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics_period").value),
                                                 self._publish_diag)
        if "instruction" in names:
            self._instruction = str(self.get_parameter("instruction").value)
            self.get_logger().info(f"instruction is now {self._instruction!r}")
        if self._pipeline is not None and names & (set(PARAMETER_INDEX) - RELOAD_PARAMETERS - CODE_PARAMETERS - {"instruction"}):
            cfg = PerceptionConfig.from_flat(self._flat())
            self._pipeline.config = cfg.pipeline  # pipeline-only settings apply from the next frame
            self._config = cfg
        if self._pipeline is not None and names & RELOAD_PARAMETERS:
            self.get_logger().info(f"{sorted(names & RELOAD_PARAMETERS)} take effect at the next configure")
        if self._state == "active" and names & REACTIVATE_PARAMETERS:
            self.get_logger().info(f"{sorted(names & REACTIVATE_PARAMETERS)} take effect at the next activate")

    @staticmethod
    def _import_plugins(spec: str) -> None:
        mods = [m.strip() for m in spec.split(",") if m.strip()]
        bad = [m for m in mods if not _MODULE_RE.match(m)]
        if bad:
            raise ConfigError(f"plugins: {bad} are not Python module names (comma-separated dotted names)")
        for mod in mods:
            importlib.import_module(mod)

    # -- lifecycle ---------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from active_o3_ros.msg import DetectionArray, InstanceMaskArray, ZoomRegionArray

        try:
            self._import_plugins(self._plugins)
            cfg = PerceptionConfig.from_flat(self._flat())
            t = time.perf_counter()
            self._frames.pipeline = build_pipeline(cfg)
            self._config = cfg
        except Exception as exc:  # bad config, missing weights, backend not installed...
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            with self._frames.lock:
                self._frames.stats.last_error = short(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._instruction = cfg.instruction
        self.get_logger().info(f"models loaded in {time.perf_counter() - t:.2f}s: sensing={cfg.backend.sensing} "
                               f"task={cfg.backend.task} mode={cfg.pipeline.mode} K={cfg.pipeline.max_regions}"
                               + (f" sensing weights={w}" if (w := getattr(self._pipeline.sensing, "weights", "")) else ""))
        out_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            "detections": self.create_lifecycle_publisher(DetectionArray, "~/detections", out_qos),
            "regions": self.create_lifecycle_publisher(ZoomRegionArray, "~/regions", out_qos),
        }
        if getattr(self._pipeline.task, "produces_masks", False):
            self._pubs["masks"] = self.create_lifecycle_publisher(InstanceMaskArray, "~/masks", out_qos)
        if self.get_parameter("publish_debug_image").value:
            from sensor_msgs.msg import Image

            self._pubs["debug_image"] = self.create_lifecycle_publisher(Image, "~/debug_image", 2)
        from std_msgs.msg import String

        self._instruction_sub = self.create_subscription(String, "~/instruction", self._on_instruction, 10)
        self._state = "inactive"
        return super().on_configure(state)

    def _input_topic(self) -> tuple[str, Any]:
        """The input subscription's name and type."""
        if self.get_parameter("compressed").value:
            from sensor_msgs.msg import CompressedImage

            # image_transport's rule: the transport suffix goes after the *remapped* base name
            return self.resolve_topic_name(IMAGE_INPUT).rstrip("/") + "/compressed", CompressedImage
        from sensor_msgs.msg import Image

        return IMAGE_INPUT, Image

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliable = self.get_parameter("qos_reliability").value == "reliable"
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(self.get_parameter("qos_depth").value),
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        try:
            topic, msg_type = self._input_topic()
            self._image_sub = self.create_subscription(msg_type, topic, self._on_image, qos)
        except Exception as exc:  # an input name (after remapping) that is not a valid topic name
            self.get_logger().error(f"activate failed: cannot subscribe to the input: {short(str(exc))}")
            with self._frames.lock:
                self._frames.stats.last_error = short(f"activate failed: {exc}")
            return TransitionCallbackReturn.FAILURE  # back to inactive; the models stay loaded
        self._slot = LatestSlot()
        self._active_since = time.monotonic()
        self._stop.clear()
        self._frames.max_pixels = int(self.get_parameter("max_image_pixels").value)
        self._frames.reuse_identical = bool(self.get_parameter("reuse_identical_frames").value)
        self._debug = bool(self.get_parameter("publish_debug_image").value) and "debug_image" in self._pubs
        self._worker = threading.Thread(target=self._work, name="active_o3_worker", daemon=True)
        self._worker.start()
        self._state = "active"
        self.get_logger().info(f"active: listening on {self.resolve_topic_name(topic)} "
                               f"({'reliable' if reliable else 'best_effort'}, depth {qos.depth})")
        return super().on_activate(state)

    def _stop_processing(self) -> None:
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        self._stop.set()
        if self._slot.close():
            self._frames.dropped()
        if self._worker is not None:
            self._worker.join(timeout=30)
            if self._worker.is_alive():
                self.get_logger().warning("worker still busy with a frame after 30 s; it will exit after it")
            self._worker = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._state = "inactive"
        return super().on_deactivate(state)

    def _release(self) -> None:
        self._stop_processing()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._instruction_sub is not None:
            self.destroy_subscription(self._instruction_sub)
            self._instruction_sub = None
        if self._pipeline is not None:
            self._pipeline.close()
            self._frames.pipeline = None
        import gc

        gc.collect()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("lifecycle error; releasing resources")
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    # -- callbacks ----------------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        """Never does work: store the message, the worker picks the latest."""
        self._frames.received(replaced_pending=self._slot.put((msg, time.monotonic())))

    def _on_instruction(self, msg: Any) -> None:
        result = self.set_parameters([RosParameter("instruction", value=str(msg.data))])[0]
        if not result.successful:
            self.get_logger().warning(f"instruction {short(repr(msg.data), 80)} refused: {short(result.reason)}",
                                      throttle_duration_sec=5.0)

    # -- worker -------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(*item)
            except Exception as exc:  # last resort: the worker must never die; counted like any failure
                self._failed(f"unexpected error: {type(exc).__name__}: {exc}")

    def _failed(self, error: str) -> None:
        """Count a failure that happened outside the frame processor, and log it."""
        self._log_failed(self._frames.error("failed", error).error)

    def _log_failed(self, text: str) -> None:
        self.get_logger().error(f"frame failed ({self._frames.stats.failed} so far): {text}", throttle_duration_sec=5.0)

    def _process(self, msg: Any, t_arrival: float) -> None:
        if self._frames.pipeline is None:
            return
        out = self._frames.process(msg, self._instruction, t_arrival)
        if out.kind == "rejected":
            self.get_logger().warning(f"skipping image ({self._frames.stats.rejected} so far): {out.error}",
                                      throttle_duration_sec=5.0)
            return
        if out.kind == "failed":
            self._log_failed(out.error)
            return
        o = out.outputs
        if not self._publish(self._pubs["detections"], o.detections):
            return
        self._publish(self._pubs["regions"], o.regions)
        if "masks" in self._pubs and o.masks is not None:
            self._publish(self._pubs["masks"], o.masks)
        if self._debug and self._pubs["debug_image"].get_subscription_count() > 0:  # no drawing for nobody
            self._publish_debug(o.frame, o.result, msg.header)

    def _publish_debug(self, frame: Any, result: Any, header: Any) -> None:
        from active_o3_ros.ros.images import rgb_to_image

        drawn = draw_debug(frame, result)
        self._publish(self._pubs["debug_image"], rgb_to_image(drawn, header, "rgb8"))

    def _publish(self, pub: Any, msg: Any) -> bool:
        """Publish; False when Ctrl-C already shut the node's context down (see
        :func:`~active_o3_ros.ros.env.publish_unless_shut_down`): not an error, not a failed frame."""
        return publish_unless_shut_down(pub, msg, self.context)

    # -- diagnostics --------------------------------------------------------------------
    def _publish_diag(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        now = time.monotonic()
        with self._frames.lock:
            s = self._frames.stats
            t0, rec0, proc0, rej0, fail0 = self._last_diag
            self._last_diag = (now, s.received, s.processed, s.rejected, s.failed)
            # frames finished per wall second over the window (a 4 s frame reads 0.25, not 0)
            period = float(self.get_parameter("diagnostics_period").value)
            window = min(FPS_WINDOW_S, max(now - self._active_since, period)) if self._state == "active" else 0.0
            fps = sum(1 for t in s.done_times if t > now - window) / window if window > 0 else 0.0
            means = {k: v / s.processed for k, v in s.stage_sums.items()} if s.processed else {}
            values = {
                "state": self._state, "instruction": self._instruction, "frames_received": s.received,
                "frames_processed": s.processed, "frames_reused": s.reused, "frames_dropped": s.dropped, "frames_rejected": s.rejected,
                "frames_failed": s.failed, "fps": f"{fps:.2f}", "latency_last_s": f"{s.last_latency:.4f}",
                "detections_published": s.detections, "last_error": s.last_error,
                **{f"mean_{k}": f"{v:.4f}" for k, v in means.items()},
            }
            new_rec, new_proc, new_rej, new_fail = s.received - rec0, s.processed - proc0, s.rejected - rej0, s.failed - fail0
            consecutive = s.consecutive_failures
        level, message = DiagnosticStatus.OK, "processing"
        if self._state != "active":
            level, message = DiagnosticStatus.OK, self._state
        elif new_fail and not new_proc:
            level, message = DiagnosticStatus.ERROR, f"every frame failing ({consecutive} in a row): {values['last_error']}"
        elif new_fail or new_rej:
            level, message = DiagnosticStatus.WARN, f"{new_fail} failed, {new_rej} rejected frames: {values['last_error']}"
        elif not new_rec:
            level, message = DiagnosticStatus.STALE, "no images received"
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: perception",
                                       message=message[:500], hardware_id="",
                                       values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])]
        self._publish(self._diag_pub, arr)


def hub_offline() -> None:
    """Model hubs offline for this process: local files only (the secure default)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:  # already imported: its constant was read from the environment at import
        hub.HF_HUB_OFFLINE = True


def draw_debug(frame: Any, result: Any) -> Any:
    """Frame with zoom regions and detections drawn (the CLI's drawing style)."""
    from active_o3_ros.draw import draw_result

    return draw_result(frame, result)


def params_yaml() -> str:
    """config/perceive.yaml as it must read: every parameter with its default and its help
    (choices from the registry).  ``active-o3-node --print-params-yaml`` writes it."""
    def block(params: Sequence[Parameter]) -> list[str]:
        lines = []
        for p in params:
            value = json.dumps(p.default) if isinstance(p.default, (bool, str)) else repr(p.default)
            lines += [f"    # {p.help()}", f"    {p.name}: {value}"]
        return lines

    head = ["# Default parameters of the active_o3 node, generated from core.config.PARAMETERS and",
            "# ros.node.ROS_PARAMETERS by `active-o3-node --print-params-yaml` (a test keeps them equal).",
            "# Used by launch/perceive.launch.py and `active_o3_node` (override with --params-file or -p).",
            "/**:", "  ros__parameters:", "    # -- pipeline (same names as the CLI flags and training/eval YAML) --"]
    ros = ["    # -- ROS adapter --",
           f"    # (input topic: the node subscribes to the relative name '{IMAGE_INPUT}'; remap it, "
           f"e.g. -r {IMAGE_INPUT}:=/camera/image_raw)"]
    return "\n".join(head + block(PARAMETERS) + ros + block(ROS_PARAMETERS)) + "\n"


def _params_file_args(argv: list[str]) -> list[str]:
    """``--params-file X`` before ``--ros-args`` becomes a ROS params-file argument."""
    out: list[str] = []
    ros: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--ros-args":
            ros = argv[i:]
            break
        if a == "--params-file" and i + 1 < len(argv):
            out += ["--params-file", argv[i + 1]]
            i += 2
            continue
        if a in ("-h", "--help"):
            print(HELP)
            raise SystemExit(0)
        if a == "--print-params-yaml":
            print(params_yaml(), end="")
            raise SystemExit(0)
        raise SystemExit(f"active-o3-node: unknown argument {a!r} (use --params-file FILE and/or --ros-args ...)")
    if not out and not any(x == "--params-file" for x in ros):
        default = data_path("config/perceive.yaml")
        if default is not None:
            out = ["--params-file", str(default)]
    return (["--ros-args", *out] + ros[1:]) if (out or ros) else []


HELP = """usage: active-o3-node [--params-file FILE] [--print-params-yaml] [--ros-args ...]

Start the ACTIVE-o3 lifecycle node 'active_o3' (same node and parameters as
launch/perceive.launch.py).  Default parameters come from config/perceive.yaml; override with
--params-file or ROS arguments, e.g.:
  active-o3-node --ros-args -r image:=/camera/image_raw -p instruction:="person, car" -p max_regions:=3

Topics: subscribes to 'image' (remap it to your camera; '<image>/compressed' with
compressed:=true) and '~/instruction'; publishes '~/detections', '~/regions', '~/masks',
'~/debug_image' and '/diagnostics'. A namespace (-r __ns:=/robot1) moves all but /diagnostics.

Parameters:
""" + "\n".join(f"  {p.name} (default {p.default!r}): {p.help()}" for p in ALL_PARAMETERS)


def main(argv: Sequence[str] | None = None) -> int:
    ros_defaults()
    args = _params_file_args(list(sys.argv[1:] if argv is None else argv))
    try:
        rclpy.init(args=["active-o3-node", *args])
    except _rclpy.RCLError as exc:  # e.g. a remap rule rcl cannot parse
        print(f"active-o3-node: error: invalid ROS arguments: {str(exc).split(', at ')[0]}", file=sys.stderr)
        return 2
    node = None
    try:
        node = ActiveO3Node()
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except ConfigError as exc:
        print(f"active-o3-node: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except _rclpy.RCLError:
        if rclpy.ok():
            raise
        # a callback that was running when a signal shut the context down: a clean stop
        # (see publish_unless_shut_down)
    finally:
        if node is not None:
            node._release()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
