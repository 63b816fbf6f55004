"""The ROS 2 interface definitions au-edge writes (REP-155 / ROS4HRI): topic names and ``.msg`` texts.

Data only. The two ``hri_msgs`` definitions are embedded in every bag (``--rosbag``) so that readers
without hri_msgs installed can decode it; ``sensor_msgs``, ``std_msgs`` and ``builtin_interfaces``
ship with every ROS 2 distribution (and with ``rosbags``' type stores), so they are not repeated.

Sources (fields, types and constants as published; upstream comment prose shortened):
- ``hri_msgs/msg/IdsList`` and ``hri_msgs/msg/FacialActionUnits``: github.com/ros4hri/hri_msgs,
  ``msg/IdsList.msg`` and ``msg/FacialActionUnits.msg`` at commit 52bdab7f (after 0.9.0, which
  removed the old ``FAU`` field and made the arrays ``float32[99]``). Licence: the ROS 2 releases of
  hri_msgs (2.x, e.g. ros-jazzy-hri-msgs 2.3.2) are Apache-2.0; the ROS 1 releases (<= 0.9) were BSD.
  Copyright PAL Robotics S.L. and the ROS4HRI contributors.
- ``sensor_msgs/msg/RegionOfInterest``: ros2/common_interfaces (Apache-2.0): ``uint32 x_offset``,
  ``uint32 y_offset``, ``uint32 height``, ``uint32 width``, ``bool do_rectify``.
- Topic layout: REP-155 "Conventions, Topics, Interfaces for Perception in Human-Robot Interaction"
  (ros-infrastructure/rep, rep-0155.rst): ``/humans/faces/tracked`` (``hri_msgs/IdsList``) and per
  face ``/humans/faces/<faceID>/roi`` (``sensor_msgs/RegionOfInterest``) and ``.../facs``
  (``hri_msgs/FacialActionUnits``).
"""
from __future__ import annotations

TRACKED_TOPIC = "/humans/faces/tracked"
FACE_NAMESPACE = "/humans/faces"

IDS_LIST = "hri_msgs/msg/IdsList"
FACIAL_ACTION_UNITS = "hri_msgs/msg/FacialActionUnits"
REGION_OF_INTEREST = "sensor_msgs/msg/RegionOfInterest"
HEADER = "std_msgs/msg/Header"
TIME = "builtin_interfaces/msg/Time"

QOS_DEPTH = 10  # every topic: reliable, volatile, keep last 10 (rclpy's usual default); bags record the same
AU_SLOTS = 99  # float32[99]: one slot per FACS code, indexed by the code number (AU12 -> index 12)

IDS_LIST_MSG = """\
# A list of ROS4HRI ids (face, body, person ids), e.g. on /humans/faces/tracked.
std_msgs/Header header
string[] ids
"""

FACIAL_ACTION_UNITS_MSG = """\
# Intensity of each action unit (AU), with its confidence, for one face (FACS codes, Ekman).
std_msgs/Header header

# Main codes
uint8 NEUTRAL_FACE=0
uint8 INNER_BROW_RAISER=1
uint8 OUTER_BROW_RAISER=2
uint8 BROW_LOWERER=4
uint8 UPPER_LID_RAISER=5
uint8 CHEEK_RAISER=6
uint8 LID_TIGHTENER=7
uint8 LIPS_TOWARD_EACH_OTHER=8
uint8 NOSE_WRINKLER=9
uint8 UPPER_LIP_RAISER=10
uint8 NASOLABIAL_DEEPENER=11
uint8 LIP_CORNER_PULLER=12
uint8 SHARP_LIP_PULLER=13
uint8 DIMPLER=14
uint8 LIP_CORNER_DEPRESSOR=15
uint8 LOWER_LIP_DEPRESSOR=16
uint8 CHIN_RAISER=17
uint8 LIP_PUCKER=18
uint8 TONGUE_SHOW=19
uint8 LIP_STRETCHER=20
uint8 NECK_TIGHTENER=21
uint8 LIP_FUNNELER=22
uint8 LIP_TIGHTENER=23
uint8 LIP_PRESSOR=24
uint8 LIPS_PART=25
uint8 JAW_DROP=26
uint8 MOUTH_STRETCH=27
uint8 LIP_SUCK=28

# Head movement codes
uint8 HEAD_TURN_LEFT=51
uint8 HEAD_TURN_RIGHT=52
uint8 HEAD_UP=53
uint8 HEAD_DOWN=54
uint8 HEAD_TILT_LEFT=55
uint8 HEAD_TILT_RIGHT=56
uint8 HEAD_FORWARD=57
uint8 HEAD_BACK=58

# Eye movement codes
uint8 EYES_TURN_LEFT=61
uint8 EYES_TURN_RIGHT=62
uint8 EYES_UP=63
uint8 EYES_DOWN=64
uint8 WALLEYE=65
uint8 CROSS_EYE=66
uint8 EYES_POSITIONED_TO_LOOK_AT_OTHER_PERSON=69

# Visibility codes
uint8 BROWS_AND_FOREHEAD_NOT_VISIBLE=70
uint8 EYES_NOT_VISIBLE=71
uint8 LOWER_FACE_NOT_VISIBLE=72
uint8 ENTIRE_FACE_NOT_VISIBLE=73
uint8 UNSOCIABLE=74

# Gross behavior codes
uint8 JAW_THRUST=29
uint8 JAW_SIDEWAYS=30
uint8 JAW_CLENCHER=31
uint8 LIP_BITE=32
uint8 CHEEK_BLOW=33
uint8 CHEEK_PUFF=34
uint8 CHEEK_SUCK=35
uint8 TONGUE_BULGE=36
uint8 LIP_WIPE=37
uint8 NOSTRIL_DILATOR=38
uint8 NOSTRIL_COMPRESSOR=39
uint8 SNIFF=40
uint8 LID_DROOP=41
uint8 SLIT=42
uint8 EYES_CLOSED=43
uint8 SQUINT=44
uint8 BLINK=45
uint8 WINK=46
uint8 SPEECH=50
uint8 SWALLOW=80
uint8 CHEWING=81
uint8 SHOULDER_SHRUG=82
uint8 HEAD_SHAKE_BACK_AND_FORTH=84
uint8 HEAD_NOD_UP_AND_DOWN=85
uint8 FLASH=91
uint8 PARTIAL_FLASH=92
uint8 SHIVER_TREMBLE=97
uint8 FAST_UP_DOWN_LOOK=98

float32[99] intensity # one per AU, indexed by AU code
float32[99] confidence # one per AU, indexed by AU code
"""

# What a bag must carry beyond the standard interfaces: msgtype -> .msg text.
HRI_MSGS = {IDS_LIST: IDS_LIST_MSG, FACIAL_ACTION_UNITS: FACIAL_ACTION_UNITS_MSG}
