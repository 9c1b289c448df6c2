"""Example pipeline: find the best competitor for a seller's product, instrumented with xray-otel.

LLM keywords -> retrieve ~5,000 candidates -> price, rating and category filters -> LLM
relevance check -> rank and select. The data and the "LLM" are fake and deterministic, and
nothing touches the network except the spans. Run it with a receiver listening:

    xray-otel serve &                       # or any OTLP endpoint via OTEL_EXPORTER_OTLP_ENDPOINT
    python examples/competitor_selection.py
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass

from xray_otel import configure, process_candidates, rank_candidates, start_run, step


@dataclass(frozen=True)
class Product:
    asin: str
    title: str
    kind: str
    category: str
    price: float
    rating: float
    reviews: int


SELLER_PRODUCT = Product("B0SELLER01", "Stainless Steel Insulated Water Bottle 32oz", "water bottle",
                         "Sports & Outdoors > Water Bottles", 29.99, 4.4, 1850)
CANDIDATE_COUNT = 5_000
SEED = 7
STEP_NAMES = ("generate_keywords", "retrieve_candidates", "filter_by_price", "filter_by_rating",
              "filter_by_category", "llm_relevance_check", "rank_and_select")
"""Every step one run records, in order (the demo waits for all of them at the receiver)."""
MODEL = "gpt-4o-mini"

_KINDS = {  # kind: (weight, categories it is listed under)
    "water bottle": (30, ("Sports & Outdoors > Water Bottles", "Kitchen & Dining > Drinkware")),
    "tumbler": (20, ("Kitchen & Dining > Drinkware",)),
    "bottle brush": (15, ("Kitchen & Dining > Cleaning", "Sports & Outdoors > Water Bottles")),
    "replacement lid": (15, ("Sports & Outdoors > Water Bottles", "Kitchen & Dining > Drinkware")),
    "phone case": (10, ("Cell Phones & Accessories > Cases",)),
    "yoga mat": (10, ("Sports & Outdoors > Yoga",)),
}
_BRANDS = ("Hydra", "Aqualina", "PeakFlask", "Contigo", "Thermo", "IronLeaf", "Nordic", "Trail")
_ALLOWED_CATEGORIES = {"Sports & Outdoors > Water Bottles", "Kitchen & Dining > Drinkware"}


def generate_keywords(title: str) -> list[str]:
    """The fake LLM: keywords for a product search."""
    return ["insulated water bottle", "stainless steel bottle", "vacuum flask 32oz"]


def search(keywords: list[str], count: int = CANDIDATE_COUNT, seed: int = SEED) -> list[Product]:
    """The fake catalogue search: ``count`` products, identical on every call."""
    rng = random.Random(seed)
    kinds = list(_KINDS)
    weights = [weight for weight, _ in _KINDS.values()]
    products = []
    for i in range(count):
        kind = rng.choices(kinds, weights)[0]
        products.append(Product(
            asin=f"B0{i:08d}",
            title=f"{rng.choice(_BRANDS)} {kind.title()} {rng.choice((12, 20, 24, 32, 40))}oz",
            kind=kind,
            category=rng.choice(_KINDS[kind][1]),
            price=round(rng.uniform(4.0, 90.0), 2),
            rating=round(rng.uniform(2.5, 5.0), 1),
            reviews=rng.randint(0, 6_000),
        ))
    return products


def price_filter(p: Product) -> tuple[bool, str]:
    if p.price < 0.5 * SELLER_PRODUCT.price:
        return False, "price_too_low"
    return p.price <= 1.5 * SELLER_PRODUCT.price, "price_too_high"


def rating_filter(p: Product) -> tuple[bool, str]:
    if p.rating < 4.9:
        return False, "rating_too_low"
    return p.reviews >= 500, "too_few_reviews"


def category_filter(p: Product) -> tuple[bool, str]:
    return p.category in _ALLOWED_CATEGORIES, "category_mismatch"


def llm_is_same_product(p: Product) -> tuple[bool, str]:
    """The fake LLM relevance check: is this the same kind of product?"""
    if p.kind == "water bottle":
        return True, ""
    return False, "accessory" if p.kind in ("bottle brush", "replacement lid") else "different_product_type"


def relevance(p: Product) -> float:
    """Score for the final choice: well-reviewed, highly rated, similarly priced."""
    price_gap = abs(p.price - SELLER_PRODUCT.price) / SELLER_PRODUCT.price
    return round(p.rating * math.log10(1 + p.reviews) - 2 * price_gap, 4)


def asin(p: Product) -> str:
    return p.asin


def run_pipeline(product: Product = SELLER_PRODUCT) -> tuple[str, Product]:
    """One instrumented run; returns its run id and the selected competitor."""
    with start_run("competitor_selection", tags={"product_id": product.asin, "version": "1.4"},
                   inputs={"product": product}) as run:
        with step("generate_keywords", step_type="llm", inputs={"title": product.title}) as s:
            keywords = generate_keywords(product.title)
            s.set_outputs({"keywords": keywords})
            s.set_reasoning("Material, insulation and size are what buyers search for.")
            s.record_llm(model=MODEL, input_tokens=812, output_tokens=40)
        with step("retrieve_candidates", step_type="retrieval", inputs={"keywords": keywords}) as s:
            candidates = search(keywords)
            s.set_outputs(count=len(candidates))
            s.set_counts(output_count=len(candidates))
        survivors = process_candidates(candidates, price_filter, step_name="filter_by_price", id_fn=asin)
        survivors = process_candidates(survivors, rating_filter, step_name="filter_by_rating", id_fn=asin)
        survivors = process_candidates(survivors, category_filter, step_name="filter_by_category", id_fn=asin)
        with step("llm_relevance_check", step_type="llm") as s:
            relevant = process_candidates(survivors, llm_is_same_product, id_fn=asin)
            s.record_llm(model=MODEL, input_tokens=150 * len(survivors), output_tokens=5 * len(survivors))
            s.set_reasoning("Accessories and other product types are not competitors.")
        best = rank_candidates(relevant, relevance, top_k=1, step_name="rank_and_select", id_fn=asin)
        run.set_outputs({"selected": best[0].asin, "title": best[0].title, "score": relevance(best[0])})
    return run.run_id, best[0]


def main() -> int:
    """Configure the SDK from OTEL_* variables, run the pipeline once, report the run id."""
    configure(service_name="competitor-finder")
    run_id, best = run_pipeline()
    print(f"run {run_id}: selected {best.asin} {best.title!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
