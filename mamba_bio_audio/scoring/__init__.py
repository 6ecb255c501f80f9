"""Zero-shot scores of DNA language models: per-base log-likelihoods and entropies of sequences of any length
(:mod:`.per_base`), variant effect scores (:mod:`.variants`), and strand averaging (:mod:`.strands`).

Every log-likelihood is in nats, from the model's log-softmax over its whole (padded) vocabulary, computed in
fp32 and summed in fp64. Library code: no Lightning, no data_prep.
"""
from mamba_bio_audio.scoring.models import check_dna_lm, is_causal
from mamba_bio_audio.scoring.per_base import causal_scores, iter_causal_scores, masked_scores
from mamba_bio_audio.scoring.strands import rc_average, reverse_complement_ids
from mamba_bio_audio.scoring.variants import Variant, score_variants, variant_window

__all__ = ["Variant", "causal_scores", "check_dna_lm", "is_causal", "iter_causal_scores", "masked_scores",
           "rc_average", "reverse_complement_ids", "score_variants", "variant_window"]
