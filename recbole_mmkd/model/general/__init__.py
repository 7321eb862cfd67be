"""ID-based and multimodal backbones."""

from recbole_mmkd.model.general.bm3 import BM3
from recbole_mmkd.model.general.bpr import BPR
from recbole_mmkd.model.general.damrs import DAMRS
from recbole_mmkd.model.general.dragon import DRAGON
from recbole_mmkd.model.general.dualgnn import DualGNN
from recbole_mmkd.model.general.freedom import FREEDOM
from recbole_mmkd.model.general.grcn import GRCN
from recbole_mmkd.model.general.itemknncbf import ItemKNNCBF
from recbole_mmkd.model.general.lattice import LATTICE
from recbole_mmkd.model.general.layergcn import LayerGCN
from recbole_mmkd.model.general.lgmrec import LGMRec
from recbole_mmkd.model.general.lightgcn import LightGCN
from recbole_mmkd.model.general.maml import MAML
from recbole_mmkd.model.general.mgcn import MGCN
from recbole_mmkd.model.general.mmgcf import MMGCF
from recbole_mmkd.model.general.mmgcn import MMGCN
from recbole_mmkd.model.general.mvgae import MVGAE
from recbole_mmkd.model.general.pgl import PGL
from recbole_mmkd.model.general.selfcfed_lgn import SELFCFED_LGN
from recbole_mmkd.model.general.slmrec import SLMRec
from recbole_mmkd.model.general.smore import SMORE
from recbole_mmkd.model.general.vbpr import VBPR

__all__ = [
    "BM3",
    "BPR",
    "DAMRS",
    "DRAGON",
    "FREEDOM",
    "GRCN",
    "LATTICE",
    "MAML",
    "MGCN",
    "MMGCF",
    "MMGCN",
    "MVGAE",
    "PGL",
    "SELFCFED_LGN",
    "SMORE",
    "VBPR",
    "DualGNN",
    "ItemKNNCBF",
    "LGMRec",
    "LayerGCN",
    "LightGCN",
    "SLMRec",
]
