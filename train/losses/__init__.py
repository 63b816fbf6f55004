"""Losses of the RTATL teacher; ``total.total_loss`` / ``total.TeacherObjective`` combine them."""
from train.losses.aunce import aunce_loss
from train.losses.bce import masked_bce, masked_intensity_l1
from train.losses.mal import (
           EXPRESSIONS,
           MetaAuxLearner,
           expression_pseudo_labels,
           mal_loss,
)
from train.losses.ot_relation import ot_relation_loss
from train.losses.pixel import flow_epe, masked_l1
from train.losses.total import TeacherObjective, total_loss

__all__ = ["EXPRESSIONS", "MetaAuxLearner", "TeacherObjective", "aunce_loss", "expression_pseudo_labels",
           "flow_epe", "mal_loss", "masked_bce", "masked_intensity_l1", "masked_l1", "ot_relation_loss",
           "total_loss"]
