"""Training losses: L_cr (``cr``), the pyramid loss L_py (``pyramid``, eqs. 20-22), APX distillation
(``apx``, eq. 28) and ``build_objective`` that assembles the recipe a config asks for."""
from fadepth.losses.apx import ApproximationLoss, Teacher, TeacherCache
from fadepth.losses.objective import Objective, ObjectiveOutput, build_objective
from fadepth.losses.pyramid import PyramidLoss, PyramidOutput, phi

__all__ = [
    "ApproximationLoss",
    "Objective",
    "ObjectiveOutput",
    "PyramidLoss",
    "PyramidOutput",
    "Teacher",
    "TeacherCache",
    "build_objective",
    "phi",
]
