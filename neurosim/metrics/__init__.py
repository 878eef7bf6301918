"""Credit-assignment metrics (paper §4-6, appendices E, F, K).

* :mod:`.alignment` — alignment angles of a rule's learning signal with the
  true gradient, δ̂ and r^ℓ = std(δ̂)/mean(δ̂), sign match, one metric step;
* :mod:`.feedback` — feedback-matrix metrics (relative error, sign
  congruence, signal and update angles) of rules with feedback matrices;
* :mod:`.theory` — eq. 15 recurrence vs measurement at initialisation;
* :mod:`.onoff` — drift from the ON/OFF weight structure of eq. 16;
* :mod:`.cluster` — cluster quality of a representation (t-SNE embedding).

Everything here is a pure function of a network, its forward states, the
error vector and what the rule declares (:class:`neurosim.rules.base.Rule`:
learning signals, error signals, feedback matrices); recording during
training is :mod:`neurosim.recording.metrics` and :mod:`neurosim.recording.feedback`.
"""

from .alignment import (
    angle,
    backward_signals,
    delta_hat,
    example_angles,
    example_sign_match,
    gevb_angle,
    predicted_angle,
    relative_std,
    rule_signals,
    sign_match,
    step_metrics,
    true_signals,
)
from .cluster import cluster_quality, embed, mean_sq_pairwise, representation_quality
from .feedback import (
    downstream_product,
    feedback_metrics,
    mean_example_angle,
    relative_error,
    sign_congruence,
)
from .onoff import network_on_off_drift, on_off_drift
from .theory import eq15_prediction, measure_at_init

__all__ = [
    "angle", "backward_signals", "cluster_quality", "delta_hat", "downstream_product", "embed",
    "eq15_prediction", "example_angles", "example_sign_match", "feedback_metrics", "gevb_angle",
    "mean_example_angle", "mean_sq_pairwise", "measure_at_init", "network_on_off_drift",
    "on_off_drift", "predicted_angle", "relative_error", "relative_std", "representation_quality",
    "rule_signals", "sign_congruence", "sign_match", "step_metrics", "true_signals",
]
