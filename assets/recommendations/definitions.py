"""The recommendations domain's Definitions: the model (with its blocking gate) and its publication.

``orchestration.jobs.daily_retrain`` selects this domain by its group; ``retrain_recommendations``
runs just this domain on demand (train, gate, publish) from the marts already built.
"""

from __future__ import annotations

import dagster as dg

from assets.recommendations.assets import RECOMMENDATIONS_GROUP, recommendation_model, redis_recommendations

retrain_recommendations_job = dg.define_asset_job(
    name="retrain_recommendations",
    selection=dg.AssetSelection.groups(RECOMMENDATIONS_GROUP),
    description="Train and evaluate; publish to Redis only when the NDCG gate passes.",
)

defs = dg.Definitions(
    assets=[recommendation_model, redis_recommendations],
    jobs=[retrain_recommendations_job],
)
