"""The launch files and the RViz configuration against the colcon install tree.

``launch`` and ``launch_ros`` have no PyPI wheels, so on machines without a ROS install the
launch files cannot be imported. They are checked in two ways:

* always, statically with Python's ``ast``: every argument they use is declared, the required
  arguments exist, every file they name (tuples like ``("config", "esp_joint.yaml")`` under the
  package's share directory) is in the install tree, every executable of this package is
  installed under lib/<package>/, and every other package they start is an exec_depend;
* where ``launch`` and ``launch_ros`` are importable (a ROS install), by building
  ``generate_launch_description()`` for real; that test is skipped elsewhere.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from stereo_semantic_ros.bagtools.make_bag import DEFAULT_FRAME_ID, TOPICS
from stereo_semantic_ros.ros.outputs import OUTPUT_TOPICS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stereo_semantic_ros"
LAUNCH_FILES = ("stereo_semantic.launch.py", "replay.launch.py")
REQUIRED_ARGUMENTS = {
    "stereo_semantic.launch.py": {
        "params_file",
        "namespace",
        "use_sim_time",
        "rviz",
        "rviz_config",
        "fixed_frame",
        "device",
        "approximate_sync",
        "lifecycle",
        "autostart",
        "left_image",
        "right_image",
        "left_info",
        "right_info",
    },
    "replay.launch.py": {
        "bag",
        "params_file",
        "rviz",
        "fixed_frame",
        "approximate_sync",
        "player",
        "record",
        "tail",
        "output_dir",
    },
}
SHARED_TOP_DIRS = ("config", "launch", "models")


# ----------------------------------------------------------------------------- static analysis


class LaunchFileFacts(ast.NodeVisitor):
    """What a launch file names: declared and used arguments, files, started executables."""

    def __init__(self) -> None:
        self.declared: set[str] = set()
        self.used: set[str] = set()
        self.files: list[tuple[str, ...]] = []
        self.nodes: list[tuple[str, str]] = []  # (package, executable)
        self.commands: list[list[str]] = []  # leading string literals of ExecuteProcess cmds
        self.executables: list[tuple[str, str]] = []  # ExecutableInPackage(executable, package)
        self.handlers: list[str] = []  # event handler classes registered (OnProcessExit ...)
        self.constants: dict[str, Any] = {}
        self._functions: list[ast.FunctionDef] = []  # the enclosing function while visiting

    def visit_Assign(self, node: ast.Assign) -> None:
        # module constants (PACKAGE = "...", INPUTS = {...}) are resolved where they are used
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                self.constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        self.generic_visit(node)

    def _value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        try:
            return ast.literal_eval(node)
        except ValueError:
            return None

    def visit_Tuple(self, node: ast.Tuple) -> None:
        values = [self._value(e) for e in node.elts]
        if (
            len(values) >= 2
            and all(isinstance(v, str) for v in values)
            and values[0] in SHARED_TOP_DIRS
            and tuple(values) not in self.files
        ):
            self.files.append(tuple(values))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        kwargs = {k.arg: k.value for k in node.keywords}
        if name == "DeclareLaunchArgument":
            arg = self._value(node.args[0])
            if isinstance(arg, str):
                self.declared.add(arg)
            elif isinstance(node.args[0], ast.Name):  # DeclareLaunchArgument(arg, ...) in a loop
                self.declared.update(self._loop_names(node.args[0].id))
        elif name == "LaunchConfiguration":
            arg = self._value(node.args[0])
            if isinstance(arg, str):
                self.used.add(arg)
            elif isinstance(node.args[0], ast.Name):
                self.used.update(self._loop_names(node.args[0].id))
        elif name in ("Node", "LifecycleNode"):
            self.nodes.append((self._value(kwargs["package"]), self._value(kwargs["executable"])))
        elif name == "ExecuteProcess":
            cmd = kwargs["cmd"]
            if isinstance(cmd, ast.BinOp):  # cmd + topics
                cmd = cmd.left
            for elements in self._lists(cmd):
                lead = []
                for element in elements:
                    value = self._value(element)
                    if not isinstance(value, str):
                        break
                    lead.append(value)
                if lead:
                    self.commands.append(lead)
        elif name == "ExecutableInPackage":
            self.executables.append(
                (self._value(kwargs["executable"]), self._value(kwargs["package"]))
            )
        elif name == "RegisterEventHandler" and node.args and isinstance(node.args[0], ast.Call):
            handler = node.args[0].func
            self.handlers.append(handler.id if isinstance(handler, ast.Name) else handler.attr)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._functions.append(node)
        self.generic_visit(node)
        self._functions.pop()

    def _lists(self, node: ast.AST) -> list[list[ast.AST]]:
        """The element lists a ``cmd`` can be: a literal list, or every list literal assigned
        to that name in the enclosing function (``cmd = [...]`` in each branch)."""
        if isinstance(node, ast.List):
            return [node.elts]
        if not isinstance(node, ast.Name) or not self._functions:
            return []
        return [
            n.value.elts
            for n in ast.walk(self._functions[-1])
            if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.List)
            and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)
        ]

    def _loop_names(self, variable: str) -> set[str]:
        """Names a comprehension variable takes: ``for arg, topic in INPUTS.items()`` etc."""
        names: set[str] = set()
        for comp in self._comprehensions:
            target = comp.target
            targets = (
                [target] if isinstance(target, ast.Name) else list(getattr(target, "elts", []))
            )
            if not targets or not isinstance(targets[0], ast.Name):
                continue
            position = [t.id for t in targets if isinstance(t, ast.Name)]
            if variable not in position:
                continue
            iterable = comp.iter
            if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute):
                source = self._value(iterable.func.value)  # X.items()
                if isinstance(source, dict):
                    index = position.index(variable)
                    names.update(str(k if index == 0 else v) for k, v in source.items())
            else:
                source = self._value(iterable)
                if isinstance(source, (tuple, list, dict)):
                    names.update(str(v) for v in source)
        return names

    def analyse(self, tree: ast.Module) -> LaunchFileFacts:
        self._comprehensions = [c for n in ast.walk(tree) for c in getattr(n, "generators", [])]
        for stmt in tree.body:  # module constants first, so uses anywhere resolve
            if isinstance(stmt, ast.Assign):
                self.visit_Assign(stmt)
        self.visit(tree)
        return self


def facts(name: str) -> LaunchFileFacts:
    path = REPO / "launch" / name
    return LaunchFileFacts().analyse(ast.parse(path.read_text(), filename=str(path)))


def exec_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for e in root.iter("exec_depend") if e.text}


@pytest.fixture(scope="module")
def share(colcon_build: Any) -> Path:
    return colcon_build.require_success() / "share" / PACKAGE


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_arguments_are_declared(name: str) -> None:
    f = facts(name)
    assert REQUIRED_ARGUMENTS[name] <= f.declared, REQUIRED_ARGUMENTS[name] - f.declared
    included = facts("stereo_semantic.launch.py").declared if name == "replay.launch.py" else set()
    undeclared = f.used - f.declared - included
    assert not undeclared, f"{name} uses undeclared launch arguments {sorted(undeclared)}"


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_names_only_installed_files_and_executables(
    name: str, share: Path, colcon_build: Any
) -> None:
    f = facts(name)
    assert (share / "launch" / name).is_file(), f"{name} is not installed"
    assert f.files, f"found no file references in {name}"
    for parts in f.files:
        assert (share.joinpath(*parts)).is_file(), f"{name} names {'/'.join(parts)}, not installed"
    deps = exec_depends()
    for package, executable in f.nodes:
        assert package and executable, f"{name}: a Node without literal package/executable"
        if package == PACKAGE:
            exe = colcon_build.prefix / "lib" / PACKAGE / executable
            assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} not installed"
        else:
            assert package in deps, f"{name} starts {package}, not an exec_depend in package.xml"
    for cmd in f.commands:
        if cmd[:2] == ["ros2", "bag"]:
            assert {"ros2bag", "rosbag2_storage_mcap"} <= deps
    for executable, package in f.executables:
        assert package == PACKAGE, f"{name} runs {executable} of {package}"
        exe = colcon_build.prefix / "lib" / PACKAGE / executable
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} not installed"
    if name == "replay.launch.py":
        assert ["ros2", "bag", "play"] in [c[:3] for c in f.commands]
        assert ["ros2", "bag", "record"] in [c[:3] for c in f.commands]
        # the fallback player when ros2 bag play is missing: this package's own
        assert f.executables == [(f.constants["BUILTIN_PLAYER"], PACKAGE)]


def test_replay_launch_stops_when_the_player_exits() -> None:
    """The player's exit is watched (the real shutdown is shown by the launch tests below and
    by hand where launch is not installed)."""
    f = facts("replay.launch.py")
    assert f.handlers == ["OnProcessExit"]
    source = (REPO / "launch" / "replay.launch.py").read_text()
    assert "Shutdown(" in source and "target_action=play" in source


def test_node_launch_starts_either_node_and_drives_the_lifecycle_one() -> None:
    """lifecycle:=true starts the lifecycle executable under the plain node's name, and
    autostart:=true configures it, then activates it when configuring ends in inactive."""
    from stereo_semantic_ros.ros.lifecycle_node import LIFECYCLE_EXECUTABLE
    from stereo_semantic_ros.ros.settings import NODE_NAME

    f = facts("stereo_semantic.launch.py")
    assert (PACKAGE, f.constants["EXECUTABLE"]) in f.nodes
    assert (PACKAGE, f.constants["LIFECYCLE_EXECUTABLE"]) in f.nodes
    assert f.constants["LIFECYCLE_EXECUTABLE"] == LIFECYCLE_EXECUTABLE
    assert f.constants["EXECUTABLE"] == NODE_NAME
    assert f.handlers == ["OnStateTransition"]
    source = (REPO / "launch" / "stereo_semantic.launch.py").read_text()
    for needle in (
        'start_state="configuring"',
        'goal_state="inactive"',
        "Transition.TRANSITION_ACTIVATE",
        "Transition.TRANSITION_CONFIGURE",
    ):
        assert needle in source, needle


def test_fixed_frame_default_is_the_rviz_configs_and_the_bags() -> None:
    f = facts("stereo_semantic.launch.py")
    assert f.constants["FIXED_FRAME"] == DEFAULT_FRAME_ID
    replay = (REPO / "launch" / "replay.launch.py").read_text()
    assert f'default_value="{DEFAULT_FRAME_ID}"' in replay
    assert f.constants["BOOLEANS"] == {"true": True, "false": False}


def test_replay_launch_records_every_output_of_the_node() -> None:
    f = facts("replay.launch.py")
    assert set(f.constants["OUTPUTS"]) == set(OUTPUT_TOPICS)
    assert f.constants["DIAGNOSTICS"] == "/diagnostics"
    # its input defaults are the topics make-bag writes
    defaults = f.constants["INPUT_DEFAULTS"]
    assert defaults == {k: v for k, v in TOPICS.items() if not k.startswith("gt_")}


def test_rviz_config_shows_the_outputs_in_the_left_optical_frame(share: Path) -> None:
    config = yaml.safe_load((share / "config" / "stereo_semantic.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == DEFAULT_FRAME_ID
    displays = manager["Displays"]
    images = {
        d["Topic"]["Value"]: d for d in displays if d["Class"] == "rviz_default_plugins/Image"
    }
    assert set(images) == {"/left/image_rect", "/semantic/color", "/disparity/color"}
    assert all(d["Enabled"] for d in images.values())
    clouds = [d for d in displays if d["Class"] == "rviz_default_plugins/PointCloud2"]
    assert [d["Topic"]["Value"] for d in clouds] == ["/points2", "/points2"]
    by_colour = {d["Color Transformer"]: d for d in clouds}
    assert by_colour["RGB8"]["Enabled"] is True
    label = by_colour["Intensity"]
    assert label["Channel Name"] == "label" and label["Enabled"] is False
    assert label["Value"] is False
    # RViz must accept best-effort and reliable publishers alike
    for d in [*images.values(), *clouds]:
        assert d["Topic"]["Reliability Policy"] == "Best Effort"
    # the launch file moves exactly these topics into the namespace
    rviz_outputs = facts("stereo_semantic.launch.py").constants["RVIZ_OUTPUTS"]
    assert {"/" + t for t in rviz_outputs} == {"/points2", "/semantic/color", "/disparity/color"}


# ------------------------------------------------------------------------- the real library

HAVE_LAUNCH = all(importlib.util.find_spec(m) is not None for m in ("launch", "launch_ros"))
needs_launch = pytest.mark.skipif(
    not HAVE_LAUNCH,
    reason="launch/launch_ros not installed (no ROS install; not on PyPI); the ast tests above "
    "cover the launch files here. By hand: colcon-build ros2/launch and ros2/launch_ros into a "
    "scratch workspace and put its site-packages on PYTHONPATH",
)
DOMAIN_ID = 140  # this file's own ROS domain (the real launches start a live node)
# LaunchService.run() as `ros2 launch <package> <file> <args>` runs it
RUN_LAUNCH = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
path, *args = sys.argv[1:]
service = LaunchService(argv=args)
service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(path),
    launch_arguments=[tuple(a.split(":=", 1)) for a in args])]))
sys.exit(service.run())
"""


def _launch_env(colcon_build: Any, tmp_path: Path) -> dict[str, str]:
    """The installed package first on the ament index and PYTHONPATH; no ros2 on PATH."""
    env = dict(os.environ)
    prefix = str(colcon_build.prefix)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        p for p in [prefix, env.get("AMENT_PREFIX_PATH", "")] if p
    )
    env["PYTHONPATH"] = os.pathsep.join(
        [str(colcon_build.site_packages()), *(p for p in sys.path if p)]
    )
    env["PATH"] = os.pathsep.join(
        d for d in env.get("PATH", "").split(os.pathsep) if not (Path(d) / "ros2").exists()
    )
    env.update(
        ROS_DOMAIN_ID=str(DOMAIN_ID),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=str(tmp_path / "roslog"),
    )
    return env


def _untrained_params(share: Path, tmp_path: Path) -> Path:
    """The shipped esp_joint.yaml with a tiny untrained network, so the node starts fast."""
    data = yaml.safe_load((share / "config" / "esp_joint.yaml").read_text())
    section = data["stereo_semantic_node"]["ros__parameters"]
    section.update(weights="", max_disparity=16, device="cpu")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@needs_launch
@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_generate_launch_description_builds(
    name: str, share: Path, colcon_build: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from launch import LaunchContext, LaunchDescription
    from launch.actions import ExecuteProcess, TimerAction
    from launch_ros.actions import Node

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(colcon_build.prefix))
    spec = importlib.util.spec_from_file_location("launch_under_test", share / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = {a.name for a in description.get_launch_arguments()}
    assert REQUIRED_ARGUMENTS[name] <= declared
    context = LaunchContext()
    for argument in description.get_launch_arguments():
        if argument.default_value is not None:
            context.launch_configurations[argument.name] = "".join(
                s.perform(context) for s in argument.default_value
            )
    if name == "replay.launch.py":
        context.launch_configurations.update(bag=str(tmp_path), player="builtin", record="false")
    started: list[Any] = []

    def expand(entities: list[Any]) -> None:
        """Visit as the launch service would, without starting processes: arguments,
        includes, groups and opaque functions are expanded, conditions evaluated."""
        for entity in entities:
            condition = getattr(entity, "condition", None)
            if condition is not None and not condition.evaluate(context):
                continue
            if isinstance(entity, (Node, ExecuteProcess)):
                started.append(entity)
            elif isinstance(entity, TimerAction):  # visiting needs the service's event loop
                expand(list(entity.actions))
            else:
                expand(list(entity.visit(context) or []))

    expand(list(description.entities))
    nodes = [e for e in started if isinstance(e, Node)]
    assert len(nodes) == 1  # rviz:=false by default
    if name == "replay.launch.py":
        players = [e for e in started if isinstance(e, ExecuteProcess) and e not in nodes]
        assert len(players) == 1  # record:=false: the builtin player only


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_launch
@pytest.mark.parametrize("autostart", ["false", "true"])
def test_lifecycle_argument_builds_a_lifecycle_node(
    autostart: str, share: Path, colcon_build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lifecycle:=true: a LifecycleNode of the lifecycle executable, under the plain node's
    name and namespace; autostart:=true adds the activate handler and the configure event."""
    from launch import LaunchContext
    from launch.actions import EmitEvent, GroupAction, RegisterEventHandler
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(colcon_build.prefix))
    module = _load(share / "launch" / "stereo_semantic.launch.py", "lifecycle_launch")
    description = module.generate_launch_description()
    context = LaunchContext()
    for argument in description.get_launch_arguments():
        context.launch_configurations[argument.name] = "".join(
            s.perform(context) for s in argument.default_value
        )
    context.launch_configurations.update(lifecycle="true", autostart=autostart, namespace="ns")
    group, *rest = module._actions(context)
    assert isinstance(group, GroupAction)
    (node,) = [e for e in group.get_sub_entities() if isinstance(e, LifecycleNode)]
    assert node.node_executable == "stereo_semantic_lifecycle_node"
    assert node.node_package == PACKAGE
    if autostart == "false":
        assert rest == []
        return
    handler, configure = rest
    assert isinstance(handler, RegisterEventHandler)
    assert isinstance(handler.event_handler, OnStateTransition)
    assert isinstance(configure, EmitEvent)
    assert isinstance(configure.event, ChangeState)
    assert configure.event.transition_id == Transition.TRANSITION_CONFIGURE
    assert configure.event.lifecycle_node_matcher(node)


@needs_launch
def test_launch_arguments_are_checked_before_anything_starts(share: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "node_launch", share / "launch" / "stereo_semantic.launch.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.parameter_overrides("", "TRUE") == {"approximate_sync": True}
    assert module.parameter_overrides("cpu", "") == {"device": "cpu"}
    with pytest.raises(ValueError, match="approximate_sync:='yes please' is not a boolean"):
        module.parameter_overrides("", "yes please")
    assert module.lifecycle_mode("false", "false") == (False, False)
    assert module.lifecycle_mode("True", "false") == (True, False)
    assert module.lifecycle_mode("true", "TRUE") == (True, True)
    with pytest.raises(ValueError, match="lifecycle:='managed' is not a boolean: use true or"):
        module.lifecycle_mode("managed", "false")
    with pytest.raises(ValueError, match="autostart:='' is not a boolean"):
        module.lifecycle_mode("true", "")
    with pytest.raises(ValueError, match="autostart:=true .* needs lifecycle:=true"):
        module.lifecycle_mode("false", "true")
    spec = importlib.util.spec_from_file_location(
        "replay_launch", share / "launch" / "replay.launch.py"
    )
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    assert replay.choose_player("auto", have_ros2=False) == "builtin"
    assert replay.choose_player("auto", have_ros2=True) == "ros2"
    with pytest.raises(RuntimeError, match="'ros2' command is not on PATH.*player:=builtin"):
        replay.choose_player("ros2", have_ros2=False)
    with pytest.raises(ValueError, match="use one of auto, ros2, builtin"):
        replay.choose_player("rosbag", have_ros2=True)


@needs_launch
def test_replay_launch_ends_by_itself_when_playback_ends(
    share: Path, colcon_build: Any, tmp_path: Path
) -> None:
    """The installed replay.launch.py under LaunchService, no ros2 on PATH: the built-in player
    plays a bag into the node, and the launch returns 0 on its own once playback is over."""

    bag = tmp_path / "bag"
    from stereo_semantic_ros.bagtools import make_bag

    argv = ["--out", str(bag), "--count", "4", "--width", "64", "--height", "32"]
    assert make_bag.main([*argv, "--no-progress"]) == 0
    args = [
        f"bag:={bag}",
        f"params_file:={_untrained_params(share, tmp_path)}",
        "record:=false",
        "namespace:=replay",
        "play_delay:=2.0",
        "tail:=2.0",
    ]
    code, output = _run_launch(share, colcon_build, tmp_path, "replay.launch.py", args, 240)
    assert code == 0, output
    assert "replay: player builtin, recording off" in output
    assert "stereo-semantic-play: published 24 messages" in output
    assert "replay: playback finished; shutting down in 2.0 s" in output
    assert "stereo_semantic_node-1]: process has finished cleanly" in output, output


def _run_launch(
    share: Path, colcon_build: Any, tmp_path: Path, launch: str, args: list[str], timeout: int = 120
) -> tuple[int, str]:
    """An installed launch file under LaunchService, run to its end: (exit code, output)."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", RUN_LAUNCH, str(share / "launch" / launch), *args],
        env=_launch_env(colcon_build, tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _start_launch(
    share: Path, colcon_build: Any, tmp_path: Path, args: list[str], log_name: str
) -> tuple[Any, Path]:
    """stereo_semantic.launch.py under LaunchService in a subprocess of its own process group
    (as a terminal runs ``ros2 launch``), output into a log."""
    import subprocess

    log_path = tmp_path / log_name
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUN_LAUNCH,
                str(share / "launch" / "stereo_semantic.launch.py"),
                *args,
            ],
            env=_launch_env(colcon_build, tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log_path


def _stop_launch(proc: Any) -> int:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group. (launch does not pass
    a SIGINT of its own on to the nodes: it assumes they got it too, and only escalates to
    SIGTERM after sigterm_timeout.) Killed if it is still running a minute later."""
    import signal
    import subprocess

    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


@needs_launch
def test_node_launch_in_a_namespace_with_remapped_inputs(
    share: Path, colcon_build: Any, tmp_path: Path
) -> None:
    """stereo_semantic.launch.py started for real: the node runs in the namespace, reads the
    remapped inputs and has approximate_sync from the launch argument."""
    import time

    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor
    from stereo_msgs.msg import DisparityImage

    remaps = {
        "left_image": "/cam/left/image_rect",
        "right_image": "/cam/right/image_rect",
        "left_info": "/cam/left/camera_info",
        "right_info": "/cam/right/camera_info",
    }
    args = [
        f"params_file:={_untrained_params(share, tmp_path)}",
        "namespace:=stereo",
        "approximate_sync:=true",
        *(f"{k}:={v}" for k, v in remaps.items()),
    ]
    proc, log = _start_launch(share, colcon_build, tmp_path, args, "launch.log")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node("launch_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        node.create_subscription(DisparityImage, "/stereo/disparity", lambda m: None, 10)

        def inputs() -> set[str]:
            if ("stereo_semantic_node", "/stereo") not in node.get_node_names_and_namespaces():
                return set()
            found = node.get_subscriber_names_and_types_by_node("stereo_semantic_node", "/stereo")
            return {topic for topic, _ in found if topic.startswith("/cam/")}

        deadline = time.monotonic() + 90
        while inputs() != set(remaps.values()):
            assert time.monotonic() < deadline, log.read_text()
            executor.spin_once(timeout_sec=0.2)
        client = node.create_client(GetParameters, "/stereo/stereo_semantic_node/get_parameters")
        assert client.wait_for_service(timeout_sec=30)
        future = client.call_async(GetParameters.Request(names=["approximate_sync"]))
        executor.spin_until_future_complete(future, timeout_sec=30)
        assert future.result().values[0].bool_value is True
    finally:
        code = _stop_launch(proc)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    text = log.read_text()
    assert code == 0, text
    assert "escalating to 'SIGTERM'" not in text, text  # the node stops on Ctrl-C by itself


@needs_launch
def test_lifecycle_launch_with_autostart_configures_activates_and_outputs_flow(
    share: Path, colcon_build: Any, tmp_path: Path
) -> None:
    """lifecycle:=true autostart:=true: the launch file itself configures, then activates the
    lifecycle node, and a stereo pair sent to it comes back as a disparity image."""
    import time

    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from node_harness import Driver

    args = [f"params_file:={_untrained_params(share, tmp_path)}", "lifecycle:=true"]
    proc, log = _start_launch(share, colcon_build, tmp_path, [*args, "autostart:=true"], "a.log")
    driver = None
    try:
        driver = Driver(DOMAIN_ID, log.read_text)
        driver.subscribe_outputs(["disparity"])
        frame = driver.warm_up(timeout=120)  # fails with the launch log unless one comes back
        disparity = driver.outputs_at(frame.stamp_ns)["disparity"]
        assert (disparity.image.height, disparity.image.width) == (32, 64)
        client = driver.node.create_client(GetState, "/stereo_semantic_node/get_state")
        driver.wait_for(client.service_is_ready, 30, "get_state")
        future = client.call_async(GetState.Request())
        driver.wait_for(future.done, 30, "get_state's reply")
        assert future.result().current_state.label == "active"
        # a deactivate by hand (a lifecycle manager pausing it) must not be undone by the
        # launch file's activate handler, which answers the end of configuring only
        change = driver.node.create_client(ChangeState, "/stereo_semantic_node/change_state")
        driver.wait_for(change.service_is_ready, 30, "change_state")
        request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))
        future = change.call_async(request)
        driver.wait_for(future.done, 30, "change_state's reply")
        assert future.result().success
        time.sleep(3.0)
        future = client.call_async(GetState.Request())
        driver.wait_for(future.done, 30, "get_state's reply")
        assert future.result().current_state.label == "inactive"
    finally:
        if driver is not None:
            driver.close()
        code = _stop_launch(proc)
    text = log.read_text()
    assert code == 0, text
    assert "stereo_semantic_lifecycle_node-1]: process started" in text, text
    assert "escalating to 'SIGTERM'" not in text, text  # the node stops on Ctrl-C by itself
    # the node's own log lines of the two transitions, in order
    configured = text.index("configured: network loaded, publishers created")
    assert text.index("activated: processing while an output has a subscriber") > configured


@needs_launch
def test_lifecycle_launch_without_autostart_leaves_the_node_unconfigured(
    share: Path, colcon_build: Any, tmp_path: Path
) -> None:
    """lifecycle:=true alone: the node waits unconfigured for a lifecycle manager (nothing
    loaded, no output publishers); autostart:=true without lifecycle:=true starts nothing."""
    import time

    from lifecycle_msgs.srv import GetState
    from node_harness import OUTPUT_TYPES, Driver

    params = f"params_file:={_untrained_params(share, tmp_path)}"
    launch = "stereo_semantic.launch.py"
    code, output = _run_launch(share, colcon_build, tmp_path, launch, [params, "autostart:=true"])
    assert code == 1, output
    assert "autostart:=true drives the lifecycle node's transitions and needs" in output
    assert "process started" not in output, output

    proc, log = _start_launch(share, colcon_build, tmp_path, [params, "lifecycle:=true"], "b.log")
    driver = None
    try:
        driver = Driver(DOMAIN_ID, log.read_text)
        client = driver.node.create_client(GetState, "/stereo_semantic_node/get_state")
        driver.wait_for(client.service_is_ready, 90, "/stereo_semantic_node/get_state")
        time.sleep(3.0)  # a configure the launch file should not send would have arrived by now
        future = client.call_async(GetState.Request())
        driver.wait_for(future.done, 30, "get_state's reply")
        assert future.result().current_state.label == "unconfigured"
        publishers = [
            info
            for topic in OUTPUT_TYPES
            for info in driver.node.get_publishers_info_by_topic("/" + topic)
            if info.node_name == "stereo_semantic_node"
        ]
        assert publishers == []
    finally:
        if driver is not None:
            driver.close()
        code = _stop_launch(proc)
    text = log.read_text()
    assert code == 0, text
    assert "stereo_semantic_lifecycle_node-1]: process started" in text, text
    assert "escalating to 'SIGTERM'" not in text, text  # the node stops on Ctrl-C by itself
    assert "configured: network loaded" not in text, text
