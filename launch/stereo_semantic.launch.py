"""Start stereo_semantic_node (and optionally RViz) on a rectified stereo pair.

    ros2 launch stereo_semantic_ros stereo_semantic.launch.py \
        params_file:=<file.yaml> namespace:=stereo rviz:=true fixed_frame:=camera_link \
        approximate_sync:=true lifecycle:=false autostart:=false \
        left_image:=/camera/left/image_rect right_image:=/camera/right/image_rect \
        left_info:=/camera/left/camera_info right_info:=/camera/right/camera_info

The node and RViz run in ``namespace``; the input arguments remap the node's relative input
topics (the defaults keep them relative, i.e. inside the namespace). ``device`` and
``approximate_sync`` override the parameter file when given. RViz (package rviz2) shows the left
image, ``semantic/color``, ``disparity/color`` and ``points2`` of the same namespace, in
``fixed_frame``: the outputs carry the left image's frame_id, so use your driver's left optical
frame, or any frame TF connects to it.

``lifecycle:=true`` starts ``stereo_semantic_lifecycle_node`` instead (same node name,
parameters, remaps and namespace): it comes up unconfigured, for a lifecycle manager or
``ros2 lifecycle set`` to drive; ``autostart:=true`` (only with ``lifecycle:=true``) has the
launch file configure it and, once it is inactive, activate it.
"""

import os

import yaml
from ament_index_python.packages import (
    PackageNotFoundError,
    get_package_prefix,
    get_package_share_directory,
)
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node, PushRosNamespace
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

PACKAGE = "stereo_semantic_ros"
EXECUTABLE = "stereo_semantic_node"
# the same node as a managed node (lifecycle:=true); it keeps EXECUTABLE as its node name
LIFECYCLE_EXECUTABLE = "stereo_semantic_lifecycle_node"
PARAMS_FILE = ("config", "esp_joint.yaml")
RVIZ_CONFIG = ("config", "stereo_semantic.rviz")
# launch argument -> the node's relative input topic it remaps
INPUTS = {
    "left_image": "left/image_rect",
    "right_image": "right/image_rect",
    "left_info": "left/camera_info",
    "right_info": "right/camera_info",
}
# topics RViz shows (absolute in the .rviz file, moved into the namespace here)
RVIZ_OUTPUTS = ("points2", "semantic/color", "disparity/color")
# RViz's fixed frame unless fixed_frame says otherwise: the left optical frame that
# stereo-semantic-make-bag writes (and the .rviz file names)
FIXED_FRAME = "left_camera_optical_frame"
BOOLEANS = {"true": True, "false": False}


def node_parameters(params_file, namespace):
    """The node's parameters from a ROS 2 parameter file, whatever the launch namespace.

    rcl applies a ``stereo_semantic_node:`` section only to ``/stereo_semantic_node``, so in a
    namespace the file would be silently ignored; its sections (``/**``, then the node's name
    with or without namespace) are merged here, later ones winning, and passed as values.
    """
    with open(params_file) as f:
        data = yaml.safe_load(f) or {}
    ns = namespace.strip("/")
    keys = ["/**", EXECUTABLE, "/" + EXECUTABLE]
    if ns:
        keys += [f"{ns}/{EXECUTABLE}", f"/{ns}/{EXECUTABLE}"]
    values = {}
    for key in keys:
        section = data.get(key) if isinstance(data, dict) else None
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            values.update(section["ros__parameters"])
    if not values:
        raise RuntimeError(
            f"{params_file} has no '{EXECUTABLE}: ros__parameters:' or '/**: ros__parameters:' "
            "section"
        )
    return values


def parameter_overrides(device, approximate_sync):
    """Node parameters the launch arguments set over the parameter file ('' = keep the file's)."""
    overrides = {}
    if device:
        overrides["device"] = device
    if approximate_sync:
        value = BOOLEANS.get(approximate_sync.strip().lower())
        if value is None:
            raise ValueError(
                f"approximate_sync:={approximate_sync!r} is not a boolean: use true (match "
                "stamps within the parameter file's sync_slop), false (identical stamps), or "
                "leave it out to keep the parameter file's value"
            )
        overrides["approximate_sync"] = value
    return overrides


def _boolean(name, value):
    parsed = BOOLEANS.get(value.strip().lower())
    if parsed is None:
        raise ValueError(f"{name}:={value!r} is not a boolean: use true or false")
    return parsed


def lifecycle_mode(lifecycle, autostart):
    """(lifecycle, autostart) from the launch arguments of those names.

    Refuses anything but true/false, and autostart:=true without lifecycle:=true (the plain
    node has no states to drive, so the request would otherwise be silently ignored).
    """
    managed = _boolean("lifecycle", lifecycle)
    start = _boolean("autostart", autostart)
    if start and not managed:
        raise ValueError(
            "autostart:=true drives the lifecycle node's transitions and needs lifecycle:=true; "
            "the plain node (lifecycle:=false) processes as soon as it starts anyway"
        )
    return managed, start


def _autostart(node):
    """Configure ``node`` now and activate it once configuring has left it inactive."""
    activate = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            # only the end of configuring: inactive is also reached by a later deactivate,
            # which must stay deactivated; and only once, so cleanup + configure by hand is not
            # followed by an activate nobody asked for
            start_state="configuring",
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(node),
                        transition_id=Transition.TRANSITION_ACTIVATE,
                    )
                )
            ],
            handle_once=True,
        )
    )
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_CONFIGURE,
        )
    )
    # the handler first: it must be in place before the node can reach inactive
    return [activate, configure]


def _require_rviz():
    """rviz:=true without the rviz2 package would fail deep inside launch_ros; say it here."""
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        raise RuntimeError(
            "rviz:=true needs the rviz2 package, which is not installed here (apt install "
            "ros-$ROS_DISTRO-rviz2, then source the ROS setup file); or launch with rviz:=false "
            "and watch the outputs with stereo-semantic-echo"
        ) from None


def _actions(context):
    namespace = LaunchConfiguration("namespace").perform(context)
    params_file = LaunchConfiguration("params_file").perform(context)
    sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    overrides = {
        "use_sim_time": sim_time,
        **parameter_overrides(
            LaunchConfiguration("device").perform(context),
            LaunchConfiguration("approximate_sync").perform(context),
        ),
    }
    managed, autostart = lifecycle_mode(
        LaunchConfiguration("lifecycle").perform(context),
        LaunchConfiguration("autostart").perform(context),
    )
    if IfCondition(LaunchConfiguration("rviz")).evaluate(context):
        _require_rviz()
    settings = {
        "name": EXECUTABLE,
        "output": "screen",
        "emulate_tty": True,
        "parameters": [node_parameters(params_file, namespace), overrides],
        # on Ctrl-C the node lets the frame in flight finish (up to 10 s on a busy CPU) before
        # it exits; launch's default of 5 s before SIGTERM would cut that short
        "sigterm_timeout": "15",
        "remappings": [(topic, LaunchConfiguration(arg)) for arg, topic in INPUTS.items()],
    }
    if managed:
        # LifecycleNode insists on a namespace; '' is relative, so PushRosNamespace applies to
        # it exactly as to the plain Node (which leaves it out)
        node = LifecycleNode(
            package=PACKAGE, executable=LIFECYCLE_EXECUTABLE, namespace="", **settings
        )
    else:
        node = Node(package=PACKAGE, executable=EXECUTABLE, **settings)
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=[
            "-d",
            LaunchConfiguration("rviz_config"),
            "--fixed-frame",
            LaunchConfiguration("fixed_frame"),
        ],
        parameters=[{"use_sim_time": sim_time}],
        # the .rviz file names root-namespace topics; point them at what the node uses
        remappings=[("/" + INPUTS["left_image"], LaunchConfiguration("left_image"))]
        + [("/" + topic, topic) for topic in RVIZ_OUTPUTS],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    group = GroupAction([PushRosNamespace(namespace), node, rviz])
    return [group, *(_autostart(node) if autostart else [])]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, *PARAMS_FILE),
                description="ROS 2 parameter file of the node (one per architecture in config/)",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the node and RViz"
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="use /clock (true when playing a bag with --clock)",
            ),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz too"),
            DeclareLaunchArgument(
                "rviz_config",
                default_value=os.path.join(share, *RVIZ_CONFIG),
                description="RViz configuration",
            ),
            DeclareLaunchArgument(
                "fixed_frame",
                default_value=FIXED_FRAME,
                description="RViz fixed frame: the left image's frame_id (what the outputs "
                "carry) or a frame TF connects to it",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="",
                description="auto | cpu | cuda | cuda:N; '' keeps the parameter file's value",
            ),
            DeclareLaunchArgument(
                "approximate_sync",
                default_value="",
                description="true: pair inputs whose stamps differ by less than sync_slop; "
                "false: identical stamps only; '' keeps the parameter file's value",
            ),
            DeclareLaunchArgument(
                "lifecycle",
                default_value="false",
                description="true: start stereo_semantic_lifecycle_node (unconfigured, for a "
                "lifecycle manager or ros2 lifecycle set) instead of stereo_semantic_node",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="false",
                description="with lifecycle:=true: configure, then activate the node from here",
            ),
            *(
                DeclareLaunchArgument(
                    arg, default_value=topic, description=f"topic the node reads as {topic}"
                )
                for arg, topic in INPUTS.items()
            ),
            OpaqueFunction(function=_actions),
        ]
    )
