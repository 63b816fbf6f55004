"""The RTATL teacher: backbones by name, the AU branch, auxiliary heads and the exportable AUNet."""
from train.model.backbones import (
           BACKBONES,
           BackboneSpec,
           create_backbone,
           register_backbone,
)
from train.model.config import TeacherConfig
from train.model.teacher import AUNet, RTATLTeacher, create_teacher

__all__ = ["BACKBONES", "AUNet", "BackboneSpec", "RTATLTeacher", "TeacherConfig", "create_backbone",
           "create_teacher", "register_backbone"]
