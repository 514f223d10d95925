"""rosbag2 tools (``active-o3-bag``): record, play, offline pipeline, info.

* ``record``: subscribe to topics over DDS (raw CDR, no deserialisation) and write a
  rosbag2 (mcap or sqlite3).  SIGINT/SIGTERM close the bag properly; a second signal, or a
  ROS shutdown that hangs after the bag is closed, ends the process anyway.  ``--ready-file``
  appears once every requested topic is subscribed; the summary and the exit status count
  what was written (exit 1 when a requested topic was never recorded).
* ``play``: publish a bag's messages (raw CDR) with their original timing.  It can wait for
  the intended recorder by node name (``--wait-for-node``), not just for any subscriber, and
  exits 1 when a subscriber did not acknowledge every message: a loss is never a success.
* ``offline``: run the pipeline over a bag's image topic *without DDS* and write a new bag
  holding every original message unchanged plus our DetectionArray / ZoomRegionArray
  (/ InstanceMaskArray) at the image's timestamp -- how robot logs become training and
  evaluation data.  Nothing from the input is dropped, even frames that fail to convert.
* ``info``: message counts per topic.

Our message types are registered into the rosbags typestore from the ``.msg`` text
(``get_types_from_msg``, ROS 2 Kilted store), so the bags carry full definitions and open in
standard ROS tools (``ros2 bag info``, Foxglove).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from active_o3_ros.ros.env import data_path, ros_defaults, split_ros_args

LOG = logging.getLogger("active_o3.bag")
OUR_TYPES = ("Detection", "DetectionArray", "ZoomRegion", "ZoomRegionArray", "InstanceMask", "InstanceMaskArray")


class BagError(RuntimeError):
    """A bag cannot be read or written; the message says which file and why."""


class DeliveryError(BagError):
    """Messages were (or would be) lost between processes: no matching subscriber, no ack."""


#: What each storage loses when the recorder is killed (SIGKILL, power loss).
STORAGE_HELP = ("mcap (default): a kill loses only the open chunk (the last ~1 MB of messages; "
                "'python -m active_o3_ros.ros.bag_recovery' restores the rest); sqlite3: written at close, "
                "a kill loses EVERY message")


# -- types ------------------------------------------------------------------------------
def msg_dir() -> Path:
    d = data_path("msg")
    if d is None or not (d / "DetectionArray.msg").is_file():
        raise BagError("cannot find the package's msg/ directory (source checkout or <prefix>/share/active_o3_ros/msg)")
    return d


def typestore() -> Any:
    """A ROS 2 Kilted typestore with the active_o3_ros messages registered from their .msg text."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    d = msg_dir()
    types: dict[str, Any] = {}
    for name in OUR_TYPES:
        types.update(get_types_from_msg((d / f"{name}.msg").read_text(), f"active_o3_ros/msg/{name}"))
    store.register(types)
    return store


def storage_plugin(name: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[name]
    except KeyError:
        raise BagError(f"storage must be 'mcap' or 'sqlite3', got {name!r}") from None


def open_writer(path: Path, storage: str) -> Any:
    from rosbags.rosbag2 import Writer

    path = Path(path)
    if path.exists():
        raise BagError(f"output bag {path} already exists; choose a new path (bags are never overwritten)")
    if not path.parent.is_dir():
        raise BagError(f"output directory {path.parent} does not exist")
    writer = Writer(path, version=9, storage_plugin=storage_plugin(storage))
    writer.open()
    return writer


def open_reader(path: Path) -> Any:
    """Open a bag, turning the library's many failure modes into one clear BagError."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for corrupt metadata/storage
        raise BagError(f"cannot open bag {path}: {type(exc).__name__}: {exc}") from exc
    return reader


def copy_connection(writer: Any, conn: Any, store: Any) -> Any:
    """Add a connection to ``writer`` with the source connection's definition and QoS."""
    ext = conn.ext
    kwargs: dict[str, Any] = dict(serialization_format=getattr(ext, "serialization_format", "cdr"),
                                  offered_qos_profiles=getattr(ext, "offered_qos_profiles", ()) or ())
    msgdef = getattr(conn.msgdef, "data", "") if conn.msgdef else ""
    if msgdef and conn.digest:
        kwargs.update(msgdef=msgdef, rihs01=conn.digest)
    else:
        kwargs.update(typestore=store)
    return writer.add_connection(conn.topic, conn.msgtype, **kwargs)


@dataclass
class TopicStats:
    count: int = 0
    msgtype: str = ""


def bag_info(path: Path) -> dict[str, TopicStats]:
    reader = open_reader(path)
    try:
        out: dict[str, TopicStats] = {}
        for conn in reader.connections:
            s = out.setdefault(conn.topic, TopicStats(msgtype=conn.msgtype))
            s.count += conn.msgcount
        return out
    finally:
        reader.close()


def iter_raw(path: Path, topics: Sequence[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield ``(topic, msgtype, timestamp_ns, raw_cdr)`` in time order."""
    reader = open_reader(path)
    try:
        conns = [c for c in reader.connections if not topics or c.topic in topics]
        if topics:
            missing = sorted(set(topics) - {c.topic for c in conns})
            if missing:
                raise BagError(f"bag {path} has no topic(s) {missing}; it has {sorted({c.topic for c in reader.connections})}")
        for conn, ts, raw in reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, ts, bytes(raw)
    finally:
        reader.close()


def rclpy_class(msgtype: str) -> Any:
    """``pkg/msg/Type`` -> the rclpy-generated class."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise BagError(f"unexpected message type name {msgtype!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise BagError(f"message type {msgtype} is not available in this Python environment: {exc}") from exc


# -- offline mode -----------------------------------------------------------------------
@dataclass
class OfflineReport:
    """Messages copied/written by ``run_offline``; ``frames``: the same counters as the node's."""

    messages_in: int = 0
    messages_out: int = 0
    frames: Any = None  # active_o3_ros.ros.frames.FrameStats


def run_offline(input_bag: Path, output_bag: Path, image_topic: str, pipeline: Any, instruction: str,
                output_prefix: str = "/active_o3", storage: str | None = None,
                max_image_pixels: int | None = None, progress: bool = True) -> OfflineReport:
    """Copy every message of ``input_bag`` and add our outputs for each frame on ``image_topic``."""
    from tqdm import tqdm

    from active_o3_ros.ros import convert
    from active_o3_ros.ros.frames import FrameProcessor
    from active_o3_ros.ros.images import DEFAULT_MAX_PIXELS

    store = typestore()
    frames = FrameProcessor(pipeline, convert.rosbags_types(store), max_image_pixels or DEFAULT_MAX_PIXELS)
    reader = open_reader(input_bag)
    stats = OfflineReport(frames=frames.stats)
    if storage is None:
        storage = "mcap" if any(Path(input_bag).glob("*.mcap")) else "sqlite3"
    image_conns = [c for c in reader.connections if c.topic == image_topic]
    if not image_conns:
        topics = sorted(reader.topics)
        reader.close()
        raise BagError(f"bag {input_bag} has no topic {image_topic!r}; topics: {topics}")
    for c in image_conns:
        if c.msgtype not in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"):
            reader.close()
            raise BagError(f"topic {image_topic} has type {c.msgtype}, expected sensor_msgs/msg/Image or CompressedImage")
    writer = open_writer(output_bag, storage)
    try:
        out_conns = {c.id: copy_connection(writer, c, store) for c in reader.connections}
        prefix = output_prefix.rstrip("/")
        det_conn = writer.add_connection(f"{prefix}/detections", "active_o3_ros/msg/DetectionArray", typestore=store)
        reg_conn = writer.add_connection(f"{prefix}/regions", "active_o3_ros/msg/ZoomRegionArray", typestore=store)
        mask_conn = None
        total = sum(c.msgcount for c in reader.connections)
        for conn, ts, raw in tqdm(reader.messages(), total=total, disable=not progress, desc="offline", unit="msg"):
            stats.messages_in += 1
            writer.write(out_conns[conn.id], ts, raw)
            stats.messages_out += 1
            if conn.topic != image_topic:
                continue
            frames.received()
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # corrupt CDR in the bag
                LOG.warning("frame at t=%d skipped: %s", ts, frames.error("rejected", f"t={ts}: cannot deserialize: {exc}").error)
                continue
            out = frames.process(msg, instruction)
            if out.outputs is None:
                LOG.warning("frame at t=%d %s: %s", ts, out.kind, out.error)
                continue
            o = out.outputs
            outputs = [(det_conn, o.detections, "DetectionArray"), (reg_conn, o.regions, "ZoomRegionArray")]
            if o.masks is not None:
                if mask_conn is None:
                    mask_conn = writer.add_connection(f"{prefix}/masks", "active_o3_ros/msg/InstanceMaskArray",
                                                      typestore=store)
                outputs.append((mask_conn, o.masks, "InstanceMaskArray"))
            for oc, om, name in outputs:
                writer.write(oc, ts, store.serialize_cdr(om, f"active_o3_ros/msg/{name}"))
                stats.messages_out += 1
    finally:
        writer.close()
        reader.close()
    return stats


# -- DDS record / play ------------------------------------------------------------------
class _Stop:
    """SIGINT/SIGTERM -> a flag the spin loops poll, so bags are always closed cleanly.

    A second signal ends the process at once (exit 130): a user pressing Ctrl-C twice, or a
    supervisor escalating, must never meet a process that ignores it.
    """

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, _frame: Any) -> None:
        if self.requested:
            sys.stderr.write(f"active-o3-bag: second signal {signum}: exiting now\n")
            sys.stderr.flush()
            os._exit(130)
        self.requested = True


def exit_watchdog(timeout: float, status: int, what: str) -> threading.Timer:
    """End the process with ``status`` if it is still alive ``timeout`` s from now.

    WHY: DDS teardown (``destroy_node``/``rclpy.shutdown``) has been seen to hang for good after
    the bag was closed, busy on a core; the data is safe by then, so the process must end.
    """
    def fire() -> None:
        sys.stderr.write(f"active-o3-bag: {what} still running after {timeout:.0f} s; exiting with {status}\n")
        sys.stderr.flush()
        os._exit(status)

    timer = threading.Timer(timeout, fire)
    timer.daemon = True
    timer.start()
    return timer


def _teardown(node: Any, status: int, what: str, timeout: float = 10.0) -> None:
    import rclpy

    timer = exit_watchdog(timeout, status, what)
    try:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    finally:
        timer.cancel()


def _qos_for(node: Any, topic: str) -> Any:
    """Reliable KEEP_ALL unless a publisher on the topic is best-effort (which a reliable
    subscription would never match)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos) if infos else True
    transient = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(history=HistoryPolicy.KEEP_ALL if reliable else HistoryPolicy.KEEP_LAST, depth=1000,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE)


RECORDER_NODE = "active_o3_bag_recorder"


def record(output: Path, topics: Sequence[str], storage: str = "mcap", duration: float = 0.0,
           max_messages: int = 0, ros_args: Sequence[str] = (), ready_file: Path | None = None,
           node_name: str = RECORDER_NODE, shutdown_timeout: float = 10.0) -> dict[str, int]:
    """Record ``topics`` until a signal, ``duration`` seconds or ``max_messages`` messages.

    Prints the summary as soon as the bag is closed (before DDS teardown, which is bounded by
    ``shutdown_timeout``).  Raises DeliveryError after closing the bag when a requested topic
    never appeared (nothing of it could be recorded).
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    store = typestore()
    if ready_file is not None and Path(ready_file).exists():
        raise BagError(f"ready file {ready_file} already exists (it must appear only when this recorder is ready)")
    if storage == "sqlite3":
        LOG.warning("storage sqlite3: the bag is written at close; if this process is killed, every message is "
                    "lost (mcap, the default, loses only the open chunk)")
    stop = _Stop()
    rclpy.init(args=["active-o3-bag", *ros_args], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(node_name)
    try:
        writer = open_writer(output, storage)
    except BagError:
        _teardown(node, 2, "shutdown after a bad output path", shutdown_timeout)
        raise
    counts = {t: 0 for t in topics}
    conns: dict[str, Any] = {}
    subs: list[Any] = []
    warned: set[str] = set()
    try:
        def subscribe_new() -> None:
            graph = dict(node.get_topic_names_and_types())
            for t in topics:
                if t in conns or t not in graph:
                    continue
                msgtype = graph[t][0]
                try:
                    cls = rclpy_class(msgtype)
                    conn = writer.add_connection(t, msgtype, typestore=store)
                except Exception as exc:
                    if t not in warned:
                        node.get_logger().error(f"cannot record {t} ({msgtype}): {exc}")
                        warned.add(t)
                    continue
                conns[t] = conn

                def cb(raw: bytes, topic: str = t) -> None:
                    writer.write(conns[topic], node.get_clock().now().nanoseconds, raw)
                    counts[topic] += 1

                subs.append(node.create_subscription(cls, t, cb, _qos_for(node, t), raw=True))
                node.get_logger().info(f"recording {t} [{msgtype}]")

        start = time.monotonic()
        next_graph = 0.0
        ready = False
        while rclpy.ok() and not stop.requested:
            if time.monotonic() >= next_graph and len(conns) < len(topics):
                subscribe_new()
                next_graph = time.monotonic() + 0.2
            if not ready and len(conns) == len(topics):
                ready = True
                node.get_logger().info(f"ready: recording all {len(topics)} topic(s)")
                if ready_file is not None:
                    Path(ready_file).write_text(f"{os.getpid()}\n")
            rclpy.spin_once(node, timeout_sec=0.05)
            if duration and time.monotonic() - start >= duration:
                break
            if max_messages and sum(counts.values()) >= max_messages:
                break
    finally:
        writer.close()
        print(f"recorded {sum(counts.values())} messages to {output}: {counts}", flush=True)
        missing = sorted(set(topics) - set(conns))
        _teardown(node, 1 if missing else 0, "ROS shutdown after the bag was closed", shutdown_timeout)
    if missing:
        raise DeliveryError(f"topic(s) {missing} were never recorded (not seen on the graph, or of an unknown "
                            "type); the bag holds the other topics")
    return counts


def subscribers_ready(node: Any, pubs: dict[str, Any], count: int = 0, nodes: Sequence[str] = ()) -> bool:
    """Every publisher is matched to at least ``count`` subscriptions and, on every topic, each
    node in ``nodes`` (name or /namespace/name) has a subscription that is matched already
    (every subscription the graph shows is matched, so the named one is too)."""
    for topic, pub in pubs.items():
        matched = pub.get_subscription_count()
        if matched < count:
            return False
        if nodes:
            infos = node.get_subscriptions_info_by_topic(topic)
            present = set()
            for i in infos:
                ns = i.node_namespace.rstrip("/")
                present.update({i.node_name, f"{ns}/{i.node_name}"})
            if not all(n in present for n in nodes) or matched < len(infos):
                return False
    return True


def wait_acked(pubs: dict[str, Any], timeout: float, counts: dict[str, int]) -> None:
    """Raise DeliveryError unless every subscriber acknowledged every message in ``timeout``."""
    import rclpy

    end = time.monotonic() + timeout
    late = [t for t, p in pubs.items()
            if not p.wait_for_all_acked(rclpy.duration.Duration(seconds=max(0.0, end - time.monotonic())))]
    if late:
        raise DeliveryError(f"not every subscriber acknowledged the messages on {late} within {timeout:g} s "
                            f"(published {[counts.get(t, 0) for t in late]}): some may be lost")


def play(input_bag: Path, topics: Sequence[str] | None = None, rate: float = 1.0, wait_subscribers: int = 0,
         wait_timeout: float = 30.0, loop: bool = False, ros_args: Sequence[str] = (),
         wait_nodes: Sequence[str] = (), ack_timeout: float = 10.0) -> int:
    """Publish the bag's messages as recorded (raw CDR); ``rate`` scales time (0 = no delays).

    With ``wait_subscribers``/``wait_nodes`` nothing is published until they are matched on
    every topic (DeliveryError after ``wait_timeout``); afterwards every subscriber must
    acknowledge every message within ``ack_timeout`` (DeliveryError otherwise)."""
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    info = bag_info(input_bag)
    wanted = list(topics) if topics else sorted(info)
    missing = sorted(set(wanted) - set(info))
    if missing:
        raise BagError(f"bag {input_bag} has no topic(s) {missing}")
    stop = _Stop()
    rclpy.init(args=["active-o3-bag", *ros_args], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("active_o3_bag_player")
    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {t: node.create_publisher(rclpy_class(info[t].msgtype), t, qos) for t in wanted}
    sent = 0
    per_topic: dict[str, int] = {}
    status = 1
    try:
        deadline = time.monotonic() + wait_timeout
        while (wait_subscribers or wait_nodes) and not stop.requested:
            if subscribers_ready(node, pubs, wait_subscribers, wait_nodes):
                break
            if time.monotonic() > deadline:
                want = ([f"{wait_subscribers} subscriber(s)"] if wait_subscribers else []) + \
                       ([f"node(s) {list(wait_nodes)}"] if wait_nodes else [])
                raise DeliveryError(f"{' and '.join(want)} not matched on every topic after {wait_timeout:g} s; "
                                    "nothing published")
            rclpy.spin_once(node, timeout_sec=0.05)
        while not stop.requested:
            t_bag0 = t_wall0 = None
            for topic, _mt, ts, raw in iter_raw(input_bag, wanted):
                if stop.requested:
                    break
                if rate > 0:
                    if t_bag0 is None:
                        t_bag0, t_wall0 = ts, time.monotonic()
                    delay = (ts - t_bag0) / 1e9 / rate - (time.monotonic() - t_wall0)
                    if delay > 0:
                        time.sleep(delay)
                pubs[topic].publish(raw)
                sent += 1
                per_topic[topic] = per_topic.get(topic, 0) + 1
            if not loop:
                break
        wait_acked(pubs, ack_timeout, per_topic)
        status = 0
    finally:
        _teardown(node, status, "ROS shutdown after playing")
    return sent


# -- CLI ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="active-o3-bag", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record topics from DDS into a rosbag2")
    r.add_argument("-o", "--output", type=Path, required=True, help="new bag directory (must not exist)")
    r.add_argument("topics", nargs="+", help="topics to record, e.g. /camera/image_raw /active_o3/detections")
    r.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help=STORAGE_HELP)
    r.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    r.add_argument("--max-messages", type=int, default=0, help="stop after this many messages in total (0: no limit)")
    r.add_argument("--ready-file", type=Path, default=None,
                   help="create this file once every requested topic is subscribed (for scripts and tests)")
    r.add_argument("--node-name", default=RECORDER_NODE, help="the recorder's node name (play --wait-for-node NAME)")
    r.add_argument("--shutdown-timeout", type=float, default=10.0,
                   help="seconds the ROS teardown may take after the bag is closed before the process exits anyway")
    pl = sub.add_parser("play", help="publish a bag's messages into DDS")
    pl.add_argument("input", type=Path)
    pl.add_argument("--topics", nargs="*", default=None, help="only these topics (default: all)")
    pl.add_argument("--rate", type=float, default=1.0, help="time scale; 0 publishes as fast as possible")
    pl.add_argument("--loop", action="store_true")
    pl.add_argument("--wait-subscribers", type=int, default=0,
                    help="wait until every topic has this many matched subscribers before playing (any node's)")
    pl.add_argument("--wait-for-node", action="append", default=[], metavar="NAME",
                    help="wait until node NAME (e.g. a recorder's --node-name) subscribes to every topic; "
                         "repeatable. Unlike a count, a bystander subscriber cannot satisfy it")
    pl.add_argument("--wait-timeout", type=float, default=30.0, help="give up (exit 1, nothing published) after this")
    pl.add_argument("--ack-timeout", type=float, default=10.0,
                    help="seconds for every subscriber to acknowledge every message; exit 1 otherwise")
    o = sub.add_parser("offline", help="run the pipeline over a bag's images without DDS; write a new bag")
    o.add_argument("input", type=Path)
    o.add_argument("-o", "--output", type=Path, required=True)
    o.add_argument("--image-topic", default="/camera/image_raw")
    o.add_argument("--params-file", type=Path, default=None, help="node YAML (e.g. config/perceive.yaml)")
    o.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a pipeline parameter")
    o.add_argument("--plugin", action="append", default=[], help="module to import first (registers extra backends)")
    o.add_argument("--output-prefix", default="/active_o3")
    o.add_argument("--storage", choices=("mcap", "sqlite3"), default=None, help="default: same as the input")
    o.add_argument("--max-image-pixels", type=int, default=None)
    i = sub.add_parser("info", help="message counts per topic")
    i.add_argument("input", type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ros_defaults()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ours, ros_args = split_ros_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(ours)
    try:
        if args.cmd == "info":
            for topic, s in sorted(bag_info(args.input).items()):
                print(f"{topic}\t{s.msgtype}\t{s.count}")
        elif args.cmd == "record":
            record(args.output, args.topics, args.storage, args.duration, args.max_messages, ros_args,
                   args.ready_file, args.node_name, args.shutdown_timeout)
        elif args.cmd == "play":
            n = play(args.input, args.topics, args.rate, args.wait_subscribers, args.wait_timeout, args.loop, ros_args,
                     args.wait_for_node, args.ack_timeout)
            print(f"published {n} messages, every one acknowledged")
        elif args.cmd == "offline":
            from active_o3_ros.core.config import PerceptionConfig, parse_overrides
            from active_o3_ros.backends.base import build_pipeline

            for mod in args.plugin:
                importlib.import_module(mod)
            overrides = parse_overrides(args.set)
            cfg = (PerceptionConfig.from_yaml(args.params_file, overrides) if args.params_file
                   else PerceptionConfig.from_flat(overrides))
            pipeline = build_pipeline(cfg)
            try:
                st = run_offline(args.input, args.output, args.image_topic, pipeline, cfg.instruction,
                                 args.output_prefix, args.storage, args.max_image_pixels)
            finally:
                pipeline.close()
            f = st.frames
            print(f"offline: {st.messages_in} messages in, {st.messages_out} out; {f.received} frames, "
                  f"{f.processed} processed, {f.rejected} rejected, {f.failed} failed, {f.detections} detections")
    except DeliveryError as exc:
        print(f"active-o3-bag: error: {exc}", file=sys.stderr)
        return 1
    except (BagError, ValueError) as exc:
        print(f"active-o3-bag: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
