"""``stereo_semantic_lifecycle_node``: the node as a managed (lifecycle) node.

The same parameters, topics and processing as ``stereo_semantic_node`` (both are shells over
:class:`~stereo_semantic_ros.ros.node.NodeParameters` and
:class:`~stereo_semantic_ros.ros.node.NodeRuntime`); only when things happen differs, driven
through the standard ``<node>/change_state`` service (``ros2 lifecycle set``, a lifecycle
manager):

* constructed (*unconfigured*): parameters declared and checked, nothing loaded;
* *configure*: loads the network (onto the GPU) and creates the publishers, /diagnostics and
  the inference worker; refused weights or settings fail the transition with the reason logged,
  and the node stays unconfigured;
* *activate*: processing starts: the inputs are subscribed while an output has a subscriber;
* *deactivate*: no more outputs (a frame in inference is dropped as ``input_reset``) and the
  inputs are unsubscribed; the network stays loaded for a quick re-activation;
* *cleanup*: everything configure made is destroyed and the network freed (the CUDA cache
  emptied);
* *shutdown* (from any state) and errors: as cleanup.

The plain node stays the default; use this one where a lifecycle manager orders start-up (e.g.
load the model before the camera driver runs, or free the GPU between missions).
"""

from __future__ import annotations

from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from stereo_semantic_ros.checkpoint import CheckpointError
from stereo_semantic_ros.ros.node import NodeParameters, NodeRuntime, run_node
from stereo_semantic_ros.ros.settings import NODE_NAME, SettingsError

LIFECYCLE_EXECUTABLE = "stereo_semantic_lifecycle_node"


class StereoSemanticLifecycleNode(LifecycleNode):
    """The node with lifecycle transitions; named ``stereo_semantic_node`` like the plain one,
    so parameter files and remappings apply unchanged.

    Raises (from the constructor): :class:`SettingsError` or rclpy's ``ParameterException``
    when a parameter is refused (parameters are declared before any transition).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.parameters = NodeParameters(self)
        self.runtime: NodeRuntime | None = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            runtime = NodeRuntime(
                self,
                self.parameters.settings,
                self.create_lifecycle_publisher,
                self.destroy_lifecycle_publisher,
            )
        except (SettingsError, CheckpointError) as exc:
            # rclpy would turn an exception into an unexplained ERROR: say why, stay unconfigured
            self.get_logger().error(f"cannot configure: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.runtime = runtime
        self.parameters.on_change = runtime.update_settings
        self.get_logger().info("configured: network loaded, publishers created")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        assert self.runtime is not None  # rcl allows activate only from inactive
        self.runtime.activate()
        self.get_logger().info("activated: processing while an output has a subscriber")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.runtime is not None
        self.runtime.deactivate()  # first: nothing is published once this returns
        self.get_logger().info("deactivated: nothing published, inputs unsubscribed")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: network freed")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_error(state)  # SUCCESS: back to unconfigured

    def _release(self) -> None:
        runtime, self.runtime = self.runtime, None
        self.parameters.on_change = None
        if runtime is not None:
            runtime.destroy()

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Run the lifecycle node until Ctrl-C (it starts unconfigured); returns 1 when a parameter
    is refused at construction."""
    return run_node(
        StereoSemanticLifecycleNode,
        argv,
        prog=LIFECYCLE_EXECUTABLE,
        description="Joint stereo disparity, depth and semantic segmentation node, as a "
        "lifecycle node: configure loads the network, activate starts processing.",
    )


if __name__ == "__main__":
    raise SystemExit(main())
