"""package.xml declares exactly what the code imports (rosdep installs no more and no less).

Every ``import`` / ``from ... import`` in stereo_semantic_ros/ and launch/ (exec_depend) and in
test/ (test_depend, less what exec_depend already brings) is parsed with ``ast`` and mapped to
its rosdep key through :data:`MODULE_KEYS`; the standard library and the package itself need
none. Message packages the node imports by name (the output table) and the packages the launch
files start are added. An import without a key fails here, naming the file: give it a key (the
rosdistro rosdep/python.yaml name, or the ROS package name) and declare it.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from stereo_semantic_ros.outputs import OUTPUTS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stereo_semantic_ros"

# top-level module -> rosdep key (ROS packages by their own name); None: needs no declaration
MODULE_KEYS: dict[str, str | None] = {
    # ROS 2
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "builtin_interfaces": "builtin_interfaces",
    "std_msgs": "std_msgs",
    "sensor_msgs": "sensor_msgs",
    "stereo_msgs": "stereo_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "rosgraph_msgs": "rosgraph_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "message_filters": "message_filters",
    "ament_index_python": "ament_index_python",
    "launch": "launch",
    "launch_ros": "launch_ros",
    # Python (rosdistro rosdep/python.yaml keys)
    "torch": "python3-torch",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "skimage": "python3-skimage",
    "scipy": "python3-scipy",
    "rosbags": "python3-rosbags-pip",
    "onnx": "python3-onnx-pip",
    "onnxruntime": "python3-onnxruntime-pip",
    "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
    "mcap_ros2": "mcap-ros2-support",
    "mcap": "mcap-ros2-support",  # the mcap package comes with mcap-ros2-support
    # no key: the zstd fallback in bagtools/recovery.py (stdlib from Python 3.14, before that
    # rosbags' own dependency backports.zstd)
    "compression": None,
    "backports": None,
}
# keys declared although no import names them, and why (checked to still be true below)
NOT_IMPORTED = {
    "rviz2": ("launch/stereo_semantic.launch.py", 'package="rviz2"'),
    "ros2bag": ("launch/replay.launch.py", '"record",'),
    "rosbag2_storage_mcap": ("launch/replay.launch.py", 'default_value="mcap"'),
}
OPTIONAL = {"python3-skimage"}  # imported inside try/except: a package.xml comment says so


def _imports(roots: list[Path]) -> dict[str, set[str]]:
    """Top-level third-party module -> the files (repo-relative) that import it."""
    local = {p.stem for p in (REPO / "test").glob("*.py")}
    found: dict[str, set[str]] = defaultdict(set)
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top == PACKAGE or top in local:
                        continue
                    found[top].add(path.relative_to(REPO).as_posix())
    return found


def _keys(imports: dict[str, set[str]]) -> set[str]:
    unknown = {m: sorted(f) for m, f in imports.items() if m not in MODULE_KEYS}
    assert not unknown, (
        f"imports without a rosdep key: {unknown}; add each to MODULE_KEYS in this test "
        "(rosdistro rosdep/python.yaml name or ROS package) and to package.xml"
    )
    return {key for m in imports if (key := MODULE_KEYS[m]) is not None}


def _declared(tag: str) -> list[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return [e.text.strip() for e in root.iter(tag) if e.text]


def expected_exec_depends() -> set[str]:
    keys = _keys(_imports([REPO / PACKAGE, REPO / "launch"]))
    keys |= {o.msgtype.split("/")[0] for o in OUTPUTS}  # imported by name (ros/outputs.py)
    return keys | set(NOT_IMPORTED)


def test_exec_depends_are_exactly_what_the_code_and_launch_files_need() -> None:
    declared = _declared("exec_depend")
    assert len(declared) == len(set(declared)), f"declared twice: {declared}"
    expected = expected_exec_depends()
    assert set(declared) == expected, (
        f"missing: {sorted(expected - set(declared))}; "
        f"declared but unused: {sorted(set(declared) - expected)}"
    )


def test_test_depends_are_exactly_the_test_only_imports() -> None:
    declared = _declared("test_depend")
    assert len(declared) == len(set(declared)), f"declared twice: {declared}"
    expected = _keys(_imports([REPO / "test"])) - expected_exec_depends()
    assert set(declared) == expected, (
        f"missing: {sorted(expected - set(declared))}; "
        f"declared but unused: {sorted(set(declared) - expected)}"
    )


def test_no_other_dependency_kinds() -> None:
    """ament_python installs with setup.py: nothing to build against, nothing exported."""
    for tag in ("depend", "build_depend", "build_export_depend", "buildtool_depend"):
        assert _declared(tag) == [], f"package.xml has <{tag}> entries"


def test_keys_not_named_by_an_import_are_still_used_by_the_launch_files() -> None:
    for key, (path, needle) in NOT_IMPORTED.items():
        assert needle in (REPO / path).read_text(), f"{key}: {path} no longer has {needle!r}"


def test_optional_dependencies_are_marked_and_imported_guarded() -> None:
    text = (REPO / "package.xml").read_text()
    for key in OPTIONAL:
        before = text[: text.index(f"<exec_depend>{key}</exec_depend>")]
        assert "optional" in before[before.rindex("<exec_depend>") :], f"{key} not marked"
    module = next(m for m, k in MODULE_KEYS.items() if k in OPTIONAL)
    for path in _imports([REPO / PACKAGE])[module]:
        tree = ast.parse((REPO / path).read_text())
        guarded = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Try)
            and any(
                isinstance(n, (ast.Import, ast.ImportFrom))
                and (getattr(n, "module", None) or n.names[0].name).split(".")[0] == module
                for n in ast.walk(ast.Module(body=node.body, type_ignores=[]))
            )
        ]
        assert guarded, f"{path} imports {module} outside try/except, so it is not optional"


def test_the_import_scan_sees_known_imports() -> None:
    """Guard against a scan that finds nothing (and so passes vacuously)."""
    imports = _imports([REPO / PACKAGE, REPO / "launch"])
    assert {"rclpy", "torch", "numpy", "cv2", "rosbags", "launch_ros", "skimage"} <= set(imports)
    assert "stereo_semantic_ros/ros/input_sync.py" in imports["message_filters"]
