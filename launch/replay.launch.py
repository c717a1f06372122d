"""Play a rosbag through the live node, record its outputs, optionally watch in RViz.

    ros2 launch stereo_semantic_ros replay.launch.py bag:=<bag> [output_dir:=<dir>] [rviz:=true]

Starts ``stereo_semantic.launch.py`` with ``use_sim_time:=true``, ``ros2 bag record`` of the
node's outputs, and after ``play_delay`` seconds (node and recorder up) ``ros2 bag play
<bag> --clock``. The bag must hold the node's inputs under the names the input arguments give
(defaults: those ``stereo-semantic-make-bag`` writes). Stop with Ctrl-C once the play ends;
the recorder then closes its bag. Without a ROS install, ``stereo-semantic-replay`` does the
same offline.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    OpaqueFunction,
    TimerAction,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = "stereo_semantic_ros"
NODE_LAUNCH = ("launch", "stereo_semantic.launch.py")
PARAMS_FILE = ("config", "esp_joint.yaml")
# the node's outputs (relative names, in its namespace) and its diagnostics (absolute)
OUTPUTS = (
    "disparity",
    "disparity/color",
    "depth/image_rect",
    "depth/camera_info",
    "confidence",
    "points2",
    "semantic/labels",
    "semantic/color",
)
DIAGNOSTICS = "/diagnostics"
# passed through to stereo_semantic.launch.py unchanged
FORWARDED = (
    "params_file",
    "namespace",
    "rviz",
    "device",
    "left_image",
    "right_image",
    "left_info",
    "right_info",
)
INPUT_DEFAULTS = {
    "left_image": "/left/image_rect",
    "right_image": "/right/image_rect",
    "left_info": "/left/camera_info",
    "right_info": "/right/camera_info",
}


def _record(context):
    """``ros2 bag record`` of the outputs, with the namespace resolved now."""
    ns = LaunchConfiguration("namespace").perform(context).strip("/")
    topics = [f"/{ns}/{t}" if ns else f"/{t}" for t in OUTPUTS] + [DIAGNOSTICS]
    cmd = [
        "ros2",
        "bag",
        "record",
        "--use-sim-time",
        "--storage",
        LaunchConfiguration("storage").perform(context),
    ]
    output_dir = LaunchConfiguration("output_dir").perform(context)
    if output_dir:
        cmd += ["--output", output_dir]
    return [
        ExecuteProcess(
            cmd=cmd + topics, output="screen", condition=IfCondition(LaunchConfiguration("record"))
        )
    ]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    play = ExecuteProcess(
        cmd=[
            "ros2",
            "bag",
            "play",
            LaunchConfiguration("bag"),
            "--clock",
            "--rate",
            LaunchConfiguration("rate"),
        ],
        output="screen",
    )
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, *NODE_LAUNCH)),
        launch_arguments=[(name, LaunchConfiguration(name)) for name in FORWARDED]
        + [("use_sim_time", "true")],
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 to play (directory or file)"),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, *PARAMS_FILE),
                description="ROS 2 parameter file of the node",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz too"),
            DeclareLaunchArgument(
                "device", default_value="", description="'' keeps the parameter file's device"
            ),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
            DeclareLaunchArgument(
                "play_delay",
                default_value="5.0",
                description="seconds to wait before playing, so the node and recorder are up",
            ),
            DeclareLaunchArgument("record", default_value="true", description="record the outputs"),
            DeclareLaunchArgument(
                "output_dir",
                default_value="",
                description="bag directory for the recorded outputs ('' = ros2 bag's default name)",
            ),
            DeclareLaunchArgument("storage", default_value="mcap", description="mcap or sqlite3"),
            *(
                DeclareLaunchArgument(arg, default_value=topic, description=f"input topic {arg}")
                for arg, topic in INPUT_DEFAULTS.items()
            ),
            node,
            OpaqueFunction(function=_record),
            TimerAction(period=LaunchConfiguration("play_delay"), actions=[play]),
        ]
    )
