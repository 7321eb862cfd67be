"""Teachers: multimodal models that exist to be distilled (and can be benchmarked alone)."""

from recbole_mmkd.model.teacher.cross_modal_attention import CMATeacher
from recbole_mmkd.model.teacher.promptmm_teacher import PromptMMTeacher
from recbole_mmkd.model.teacher.sgfd_teacher import SGFDTeacher

__all__ = ["CMATeacher", "PromptMMTeacher", "SGFDTeacher"]
