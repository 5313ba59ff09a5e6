"""MSA2 experiment planning: planners sized by the MSA2 network's memory estimate, and ``nnunet-msa plan``."""
from nnunet_msa.planning.msa2_planners import PLANNERS, nnUNetMSA2Planner, nnUNetMSA2ResEncPlanner

__all__ = ["PLANNERS", "nnUNetMSA2Planner", "nnUNetMSA2ResEncPlanner"]
