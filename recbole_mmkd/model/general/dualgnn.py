"""DualGNN: per-modality user-item graphs fused per user, smoothed over a user co-occurrence
graph.

Wang et al., "DualGNN: Dual Graph Neural Network for Multimedia Recommendation", IEEE TMM 2021
(MMRec ``src/models/dualgnn.py``).
"""

from __future__ import annotations

import torch

from recbole_mmkd.model import register_model
from recbole_mmkd.model.options import check_choice
from recbole_mmkd.model.preference_gcn import PreferenceGraphRecommender
from recbole_mmkd.model.slots import mmrec_order

USER_FUSIONS = ("released", "paper")


@register_model()
class DualGNN(PreferenceGraphRecommender):
    r"""Per-modality graph encoders, items summed, users a learnt weighting of the modalities,
    then each user adds its co-occurring users.

    - Per modality m: :math:`H_m` =
      :class:`~recbole_mmkd.model.preference_gcn.PreferenceGCN` over :math:`\hat A = D^{-1/2} A
      D^{-1/2}` (user rows a free preference table :math:`P_m`).
    - Items :math:`h_i = \sum_m H_{m,i}`. Users :math:`h_u = \sum_m w_{um} U_{m,u}`, the
      weights :math:`w_u` learnt (initialised to a softmax), where ``user_fusion: paper`` reads
      :math:`U_m = H_m`, and ``released`` (the default) what MMRec's code computes: its item sum
      is accumulated in place into its image table (``dualgnn.py`` l. 150-154), so
      :math:`U_v = \sum_m H_m` and :math:`U_m = H_m` for the others (for image and text,
      :math:`w_{uv} (H_v + H_t) + w_{ut} H_t`). Here the sum goes into the first modality of
      :func:`~recbole_mmkd.model.slots.mmrec_order`: image where the dataset has it (MMRec's
      first slot; TikTok's audio sits in its second), else the first by name. With one
      modality users are :math:`H_{1,u}`, unweighted, as released.
    - User-user graph (:class:`~recbole_mmkd.model.cooccurrence.UserCooccurrenceGraph`, drawn
      again each epoch): :math:`e_u = h_u + \sum_v a_{uv} h_v`; score :math:`e_u^\top h_i`.

    Loss: :math:`-\mathrm{mean} \log_2 \sigma(s_{ui^+} - s_{ui^-}) + \lambda (\sum_m
    \mathrm{mean}(P_{m,u}^2) + \mathrm{mean}(W^2))`, the BPR term in base 2 as released, the
    regulariser on the batch users' preference rows and the whole user-weight table.

    Config: ``embedding_size`` (d, MMRec's hard-coded ``dim_latent`` 64), ``user_k`` (MMRec: 40,
    hard-coded), ``user_fusion`` (released / paper), ``reg_weight`` (:math:`\lambda`),
    ``feature_norm``.

    Deviations from the release (MMRec ``src/models/dualgnn.py``, e775373):

    - The user graph is built here from the training split (MMRec reads
      ``user_graph_dict_file``, written by its ``preprocessing/dualgnn-gen-u-u-matrix.py``);
      co-occurrence ties are ordered by user id.
    - Evaluation scores with the current parameters; the release scores with the
      representations of the epoch's last training batch, before its optimiser step.
    - Any number of modalities. Left out as without effect on what the release computes: the
      item-weight table ``weight_i`` (read by no score; only regularised towards 0), the
      dropped-node edge lists (passed to the encoders, which never read them), ``MLP_v``,
      ``MLP_t``, ``MLP_user`` and ``result_embed``'s initial values. The features are fixed.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.user_fusion = check_choice("user_fusion", config["user_fusion"], USER_FUSIONS)
        # the modality whose user rows take the item sum under `released`: MMRec's first slot
        self.summed_into = self.modalities.index(mmrec_order(self.modalities)[0])

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.encode()
        summed = torch.stack(encoded).sum(0)
        if self.user_fusion == "released":
            encoded[self.summed_into] = summed
        if len(encoded) == 1:  # the release weights users' modalities only where it has two
            users = encoded[0][: self.n_users]
        else:
            users = torch.stack([h[: self.n_users] for h in encoded], dim=2) @ self.user_weights
            users = users.squeeze(2)
        return users + self.user_graph(users), summed[self.n_users :]
