"""Kept for old imports: replay's previews are :mod:`stereo_semantic_ros.replay.previews`."""

from stereo_semantic_ros.replay.previews import preview_images, preview_plan, save_previews

__all__ = ["preview_images", "preview_plan", "save_previews"]
