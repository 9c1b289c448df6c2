"""What the demo pipeline (xray_otel/demo/competitor_selection.py) records: the funnel its tests
and the UI tests expect."""

# (name, type, input_count, output_count, rejections): fixed by the example's seeded data.
EXPECTED_FUNNEL = [
    ("generate_keywords", "llm", None, None, {}),
    ("retrieve_candidates", "retrieval", None, 5000, {}),
    ("filter_by_price", "filter", 5000, 1731, {"price_too_low": 661, "price_too_high": 2608}),
    ("filter_by_rating", "filter", 1731, 105, {"rating_too_low": 1614, "too_few_reviews": 12}),
    ("filter_by_category", "filter", 105, 72, {"category_mismatch": 33}),
    ("llm_relevance_check", "llm", 72, 32, {"different_product_type": 18, "accessory": 22}),
    ("rank_and_select", "rank", 32, 1, {"below_top_k": 31}),
]
SELECTED = "B000004528"
