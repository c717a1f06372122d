"""Play a rosbag through the live node, record its outputs, optionally watch in RViz; then stop.

    ros2 launch stereo_semantic_ros replay.launch.py bag:=<bag> [output_dir:=<dir>] [rviz:=true]

Starts ``stereo_semantic.launch.py`` with ``use_sim_time:=true``, ``ros2 bag record`` of the
node's outputs, and after ``play_delay`` seconds (node and recorder up) the player with the
bag's clock. When the player ends, everything is shut down ``tail`` seconds later (time for the
node's last frames to be recorded; the recorder closes its bag on the way out); a player that
fails shuts everything down at once, saying so, and the launch exits with code 1.

What it needs:

* ``player:=ros2`` runs ``ros2 bag play`` (the ``ros2`` command of a sourced ROS install with the
  packages ros2bag and rosbag2_storage_mcap); ``player:=builtin`` runs this package's
  ``stereo-semantic-play`` (rosbags + rclpy, no rosbag2 needed); ``player:=auto``, the default,
  takes ``ros2`` when it is on PATH and ``builtin`` otherwise.
* ``record:=true`` (default) runs ``ros2 bag record`` and so needs ``ros2`` on PATH; without it
  pass ``record:=false`` (and watch with RViz or stereo-semantic-echo), or use the offline
  ``stereo-semantic-replay``, which writes the outputs bag with no ROS install at all.

The bag must hold the node's inputs under the names the input arguments give (defaults: those
``stereo-semantic-make-bag`` writes).
"""

import os
import shutil

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    TimerAction,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.substitutions import ExecutableInPackage

PACKAGE = "stereo_semantic_ros"
NODE_LAUNCH = ("launch", "stereo_semantic.launch.py")
PARAMS_FILE = ("config", "esp_joint.yaml")
BUILTIN_PLAYER = "stereo-semantic-play"
PLAYERS = ("auto", "ros2", "builtin")
CLOCK_HZ = "40"  # /clock rate of either player (ros2 bag play's default)
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
    "fixed_frame",
    "device",
    "approximate_sync",
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
NO_ROS2 = (
    "the 'ros2' command is not on PATH, so {what} cannot run: source a ROS 2 install that has "
    "ros2bag and rosbag2_storage_mcap (apt install ros-$ROS_DISTRO-rosbag2 "
    "ros-$ROS_DISTRO-rosbag2-storage-mcap; source /opt/ros/$ROS_DISTRO/setup.bash). {instead}"
)


def choose_player(player, have_ros2):
    """``ros2`` or ``builtin`` for the ``player`` argument; a clear error when it cannot run."""
    if player not in PLAYERS:
        raise ValueError(f"player:={player!r}: use one of {', '.join(PLAYERS)}")
    if player == "auto":
        return "ros2" if have_ros2 else "builtin"
    if player == "ros2" and not have_ros2:
        raise RuntimeError(
            NO_ROS2.format(
                what="player:=ros2 (ros2 bag play)",
                instead=f"Or use player:=builtin ({BUILTIN_PLAYER}, needs no rosbag2).",
            )
        )
    return player


def _player(context, player):
    bag = LaunchConfiguration("bag").perform(context)
    if not os.path.exists(bag):
        raise RuntimeError(f"bag:={bag!r} does not exist; give a rosbag2 directory or file")
    rate = LaunchConfiguration("rate").perform(context)
    if player == "ros2":
        cmd = ["ros2", "bag", "play", bag, "--clock", CLOCK_HZ, "--rate", rate]
    else:
        cmd = [
            ExecutableInPackage(executable=BUILTIN_PLAYER, package=PACKAGE),
            bag,
            "--clock",
            CLOCK_HZ,
            "--rate",
            rate,
            "--no-progress",
        ]
    return ExecuteProcess(cmd=cmd, output="screen", name=f"player_{player}")


def _recorder(context):
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
    return ExecuteProcess(cmd=cmd + topics, output="screen", name="recorder")


def _on_player_exit(event, context):
    """Playback over: stop everything after ``tail`` s; a failed player stops it at once."""
    if event.returncode != 0:
        # an exception is how a launch shuts down *with* exit code 1 (ros2 launch's status)
        raise RuntimeError(
            f"replay: the player exited with code {event.returncode} (its output is above); "
            "shutting down"
        )
    tail = LaunchConfiguration("tail").perform(context)
    return [
        LogInfo(msg=f"replay: playback finished; shutting down in {tail} s"),
        TimerAction(
            period=float(tail),
            actions=[EmitEvent(event=Shutdown(reason="playback finished"))],
        ),
    ]


def _play_and_record(context):
    have_ros2 = shutil.which("ros2") is not None
    player = choose_player(LaunchConfiguration("player").perform(context), have_ros2)
    record = LaunchConfiguration("record").perform(context).lower() in ("true", "1")
    actions = []
    if record:
        if not have_ros2:
            raise RuntimeError(
                NO_ROS2.format(
                    what="record:=true (ros2 bag record)",
                    instead="Or pass record:=false and watch with rviz:=true or "
                    "stereo-semantic-echo; stereo-semantic-replay writes an outputs bag "
                    "with no ROS install at all.",
                )
            )
        actions.append(_recorder(context))
    play = _player(context, player)
    actions += [
        LogInfo(msg=f"replay: player {player}, recording {'on' if record else 'off'}"),
        RegisterEventHandler(OnProcessExit(target_action=play, on_exit=_on_player_exit)),
        TimerAction(period=LaunchConfiguration("play_delay"), actions=[play]),
    ]
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
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
                "fixed_frame",
                default_value="left_camera_optical_frame",
                description="RViz fixed frame (the bag's left image frame_id)",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="'' keeps the parameter file's device"
            ),
            DeclareLaunchArgument(
                "approximate_sync",
                default_value="",
                description="true | false; '' keeps the parameter file's value",
            ),
            DeclareLaunchArgument(
                "player",
                default_value="auto",
                description="ros2 (ros2 bag play), builtin (stereo-semantic-play, no rosbag2 "
                "needed) or auto (ros2 when on PATH, else builtin)",
            ),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
            DeclareLaunchArgument(
                "play_delay",
                default_value="5.0",
                description="seconds to wait before playing, so the node and recorder are up",
            ),
            DeclareLaunchArgument(
                "tail",
                default_value="5.0",
                description="seconds to keep running after playback ends, so the node's last "
                "frames are processed and recorded (raise it for a slow CPU)",
            ),
            DeclareLaunchArgument(
                "record",
                default_value="true",
                description="record the outputs with ros2 bag record (needs ros2 on PATH)",
            ),
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
            # first: a missing ros2 or bag stops the launch before the node is started
            OpaqueFunction(function=_play_and_record),
            node,
        ]
    )
