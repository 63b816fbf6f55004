"""ROS 2 output following REP-155 (ROS4HRI): ``/humans/faces/tracked``, ``.../<id>/roi``, ``.../<id>/facs``.

- ``runtime.ros2.messages``: one frame's results -> the REP-155 messages (plain dataclasses, no ROS).
- ``runtime.outputs.rosbag``: ``--rosbag DIR`` writes them to a rosbag2 (MCAP) with the pure-Python
  ``rosbags`` library (``pip install 'au-edge[ros]'``).
- ``runtime.ros2.node``: ``au-edge ros2``, the live node (rclpy from a sourced ROS 2 install).

Nothing here imports ROS or rosbags at import time. See docs/ros2.md.
"""
