"""Learn which configuration wins for which dataset, and say why.

The candidate space (:class:`CandidateSpace`), the production-rules prior
(:class:`RulesRanker`), the feature encoding (:class:`FeatureEncoder`), the LightGBM
ranker (:class:`RankerModel`), the cost model (:class:`CostModel`), the
leave-one-dataset-out evaluation (:func:`evaluate`), :func:`refit` and :func:`suggest`.
Importing this package is cheap: LightGBM and Polars load when used.
"""

from __future__ import annotations

from mlsel.metalearn._refit import RefitReport, refit
from mlsel.metalearn._suggest import Suggestion, SuggestionReport, suggest
from mlsel.metalearn.cards import ArchitectureCard, architecture_card, architecture_cards
from mlsel.metalearn.cost import CostEstimate, CostModel
from mlsel.metalearn.evaluation import Evaluation, evaluate
from mlsel.metalearn.features import FeatureEncoder, candidate_frame, configs_from_frame
from mlsel.metalearn.ranker import RankerModel
from mlsel.metalearn.rules import DEFAULT_RULES, Rule, RulesRanker
from mlsel.metalearn.space import ARCHITECTURES, CandidateSpace, available

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_RULES",
    "ArchitectureCard",
    "CandidateSpace",
    "CostEstimate",
    "CostModel",
    "Evaluation",
    "FeatureEncoder",
    "RankerModel",
    "RefitReport",
    "Rule",
    "RulesRanker",
    "Suggestion",
    "SuggestionReport",
    "architecture_card",
    "architecture_cards",
    "available",
    "candidate_frame",
    "configs_from_frame",
    "evaluate",
    "refit",
    "suggest",
]
