"""ID-based and multimodal backbones."""

from recbole_mmkd.model.general.bpr import BPR
from recbole_mmkd.model.general.freedom import FREEDOM
from recbole_mmkd.model.general.lightgcn import LightGCN
from recbole_mmkd.model.general.vbpr import VBPR

__all__ = ["BPR", "FREEDOM", "VBPR", "LightGCN"]
