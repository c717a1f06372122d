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
        "device",
        "left_image",
        "right_image",
        "left_info",
        "right_info",
    },
    "replay.launch.py": {"bag", "params_file", "rviz", "output_dir"},
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
        self.constants: dict[str, Any] = {}

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
        elif name == "Node":
            self.nodes.append((self._value(kwargs["package"]), self._value(kwargs["executable"])))
        elif name == "ExecuteProcess":
            cmd = kwargs["cmd"]
            if isinstance(cmd, ast.List):
                lead = []
                for element in cmd.elts:
                    value = self._value(element)
                    if not isinstance(value, str):
                        break
                    lead.append(value)
                self.commands.append(lead)
            elif isinstance(cmd, ast.BinOp):  # cmd + topics
                self.commands.append(self._list_names(cmd.left))
        self.generic_visit(node)

    def _list_names(self, node: ast.AST) -> list[str]:
        for assign in self._assignments:
            if isinstance(node, ast.Name) and assign.targets[0].id == node.id:
                return [
                    self._value(e) for e in assign.value.elts if isinstance(self._value(e), str)
                ]
        return []

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
        self._assignments = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name)
            and isinstance(n.value, ast.List)
        ]
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
    if name == "replay.launch.py":
        assert ["ros2", "bag", "play"] in [c[:3] for c in f.commands]
        assert ["ros2", "bag", "record"] in [c[:3] for c in f.commands]


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


@pytest.mark.skipif(
    not HAVE_LAUNCH,
    reason="launch/launch_ros not installed (no ROS install; "
    "not on PyPI); the ast tests above cover the launch files here",
)
@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_generate_launch_description_builds(
    name: str, share: Path, colcon_build: Any, monkeypatch: pytest.MonkeyPatch
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
    if name == "replay.launch.py":
        context.launch_configurations["bag"] = "/nonexistent/bag"
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
        assert (
            sum(isinstance(e, ExecuteProcess) and not isinstance(e, Node) for e in started) == 2
        )  # ros2 bag record and ros2 bag play
