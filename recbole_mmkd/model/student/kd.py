"""Students distilled from a stored teacher: the KD baselines of the field.

The distillation methods themselves are classes: logit KD, RD and RRD in
:mod:`recbole_mmkd.distill.methods`, and CD, DE / DE-RRD, FTD / HTD, DCD and UnKD each in a
module of their own beside it, imported here so that their classes are registered.
"""

from __future__ import annotations

from typing import Any, ClassVar

import scipy.sparse as sp
import torch

from recbole_mmkd.distill import cd, dcd, de, topology, unkd  # noqa: F401 (registers them)
from recbole_mmkd.distill.methods import resolve_kd_method
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_wrapper
from recbole_mmkd.teacher import TeacherRef

STUDENTS = ("LightGCN", "BPR", "MDLightGCN")


class KDStudentMixin:
    r"""A student trained on its own loss plus distillation from a stored teacher.

    The teacher (config ``teacher``, with ``teacher_config`` overrides) is trained once per
    (dataset, teacher config, seed) by :func:`recbole_mmkd.pipeline.run_one`, which stores its
    best-epoch user and item tables; the student's KD method (submodule ``kd``) holds what it
    needs of them as frozen buffers, so no student step can change its teacher.

    .. math:: \mathcal{L} = \mathcal{L}_{student} + \text{kd\_weight}\,\mathcal{L}_{KD}

    :math:`\mathcal{L}_{KD}` is the :class:`~recbole_mmkd.distill.methods.KDMethod` registered
    as ``kd_method`` (submodule ``kd``), built from the teacher tables, the student's training
    interactions and its width: ``logit`` (Hinton et al. 2015), ``rd`` (Tang and Wang, KDD
    2018), ``rrd`` (Kang et al., CIKM 2020), ``cd`` (Lee et al., ICDM 2019), ``de`` and
    ``de_rrd`` (Kang et al., CIKM 2020), ``ftd`` and ``htd`` (Kang et al., KDD 2021), ``dcd``
    (Lee and Kim, CIKM 2021), ``unkd`` (Chen et al., WSDM 2023), or any class added with
    :func:`~recbole_mmkd.distill.methods.register_kd_method`. Every method works for a student
    narrower than its teacher (``embedding_size`` below the teacher's width): the score-based
    ones compare scores, DE and HTD project the student's rows to the teacher's width, FTD
    compares relations within each space. The method's own parameters (DE's experts, HTD's
    projectors) train with the student and are stored with it; it hears every epoch's start
    (:meth:`on_epoch_start`).
    """

    # the KD method's own parts (DE's experts, HTD's projectors) serve no prediction
    training_only: ClassVar[tuple[str, ...]] = ("kd",)

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.kd_weight: float = config["kd_weight"]
        self.teacher_name: str = config["teacher"]
        method = resolve_kd_method(config["kd_method"])
        ref = TeacherRef.from_config(config)
        user_t, item_t = ref.tables()
        if (user_t.shape[0], item_t.shape[0]) != (self.n_users, self.n_items):
            raise ConfigError(
                "teacher",
                ref.model,
                f"its tables in {ref.run_dir} are for {user_t.shape[0]} users x "
                f"{item_t.shape[0]} items, the dataset has {self.n_users} x {self.n_items}",
                "train the teacher on the student's dataset",
            )
        self.kd = method.from_config(
            config,
            teacher_users=user_t,
            teacher_items=item_t,
            seen=dataset.inter_matrix(form="csr"),
            n_items=self.n_items,
            student_dim=config["embedding_size"],
        )

    def run_info(self) -> dict:
        return {**super().run_info(), "teacher": self.teacher_name, "kd_method": self.kd.name}

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.kd.on_epoch_start(epoch)

    def kd_loss(self, interaction) -> torch.Tensor:
        """The distillation term of a batch."""
        user_e, item_e = self.representations()
        items = torch.stack([interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]], dim=1)
        return self.kd.loss(user_e, item_e, interaction[self.USER_ID], items)

    def calculate_loss(self, interaction) -> torch.Tensor:
        with self.one_forward():
            loss = super().calculate_loss(interaction)
            if self.kd_weight == 0:
                return loss
            return loss + self.kd_weight * self.kd_loss(interaction)


_CHECKED: set[tuple] = set()  # KD settings already built against a dataset
_TRAINING: dict[tuple[str, str], sp.csr_matrix] = {}  # (data folder, dataset) -> interactions


def check_kd_settings(config: Any, *, source: str) -> None:
    """Refuse, before anything trains, the settings a KD student's method cannot run with on
    its dataset (a candidate list longer than a user's unseen items, too few popularity groups,
    an unknown choice): the method is built once against the student's training interactions
    and stand-in teacher tables of the teacher's width, and its :class:`ConfigError` is
    re-raised naming ``source``. Other models pass; each setting is built once per dataset."""
    from recbole.data import data_preparation

    from recbole_mmkd.data import MultimodalDataset
    from recbole_mmkd.model import get_model

    if not issubclass(get_model(config["model"]), KDStudentMixin):
        return
    method = resolve_kd_method(config["kd_method"])
    teacher_width = (config["teacher_config"] or {}).get("embedding_size", 64)
    where = (str(config["data_path"]), config["dataset"])
    key = (*where, method.name, repr(sorted(method.settings(config).items())), teacher_width)
    if key in _CHECKED:
        return
    if where not in _TRAINING:
        train, _, _ = data_preparation(config, MultimodalDataset(config))
        _TRAINING[where] = train.dataset.inter_matrix(form="csr")
    seen = _TRAINING[where]
    rng = torch.Generator().manual_seed(0)
    try:
        method.from_config(
            config,
            teacher_users=torch.randn(seen.shape[0], teacher_width, generator=rng),
            teacher_items=torch.randn(seen.shape[1], teacher_width, generator=rng),
            seen=seen,
            n_items=seen.shape[1],
            student_dim=config["embedding_size"],
        )
    except ConfigError as err:
        _, setting, problem, fix = err._init_args
        raise ConfigError(source, setting, f"{problem} on {config['dataset']}", fix) from None
    _CHECKED.add(key)


for _student in STUDENTS:
    register_wrapper(
        "KD", KDStudentMixin, _student, f"{_student} distilled from a stored teacher.",
        needs_teacher=True,
    )  # fmt: skip
