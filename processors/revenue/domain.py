"""Project revenue month by month (domain reference, section 3, monetization).

Each month, in this order:
    users       = users + int(acquisition) - int(users x churn)
    conversions = int(free x conversion_rate)          where free = users - paid
    paid        = paid + conversions - int(paid x churn)
    acquisition = acquisition x (1 + growth_rate)
    revenue     = sum over tiers of int(paid x tier_share) x price_monthly
ARPU is the last month's revenue per paying user and LTV = ARPU / churn (None when churn
is 0). `users` counts every user, paying or not; month 0 has `initial_users` free users
and no paying ones. Pure functions: no Kafka, no Faust.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_TIERS: tuple[Mapping[str, Any], ...] = (
    {"name": "basic", "price_monthly": 9.99, "price_yearly": None, "share": 0.6, "features": []},
    {"name": "pro", "price_monthly": 19.99, "price_yearly": None, "share": 0.3, "features": []},
    {"name": "premium", "price_monthly": 49.99, "price_yearly": None, "share": 0.1, "features": []},
)
DEFAULTS: Mapping[str, Any] = {
    "business_model": "freemium",
    "initial_users": 0,
    "acquisition_per_month": 50.0,
    "conversion_rate": 0.2,
    "churn_rate": 0.05,
    "growth_rate": 0.05,
    "months": 36,
    "currency": "USD",
}
MAX_MONTHS = 600
# int() of a product like 100 x 0.29 (28.999999999999996) would lose a whole user.
_EPSILON = 1e-9


class InvalidProjectionRequest(ValueError):
    """Raised when a projection request's numbers cannot be projected."""


def whole(value: float) -> int:
    """Return int(value) for a non-negative value, immune to binary rounding just below."""
    return math.floor(value + _EPSILON) if value > 0 else 0


def yearly_price(tier: Mapping[str, Any]) -> float:
    """Return a tier's yearly price: as given, or price_monthly x 10."""
    yearly = tier.get("price_yearly")
    return float(yearly) if yearly is not None else round(float(tier["price_monthly"]) * 10, 2)


def _check(request: Mapping[str, Any], tiers: Sequence[Mapping[str, Any]]) -> None:
    rates = ("conversion_rate", "churn_rate")
    for name in rates:
        value = float(request[name])
        if not 0.0 <= value <= 1.0:
            raise InvalidProjectionRequest(f"{name} must be within 0..1, got {value}")
    if not float(request["growth_rate"]) >= -1.0:
        raise InvalidProjectionRequest(f"growth_rate must be >= -1, got {request['growth_rate']}")
    if not float(request["acquisition_per_month"]) >= 0.0:
        raise InvalidProjectionRequest("acquisition_per_month must be >= 0")
    if int(request["initial_users"]) < 0:
        raise InvalidProjectionRequest("initial_users must be >= 0")
    if not 0 <= int(request["months"]) <= MAX_MONTHS:
        raise InvalidProjectionRequest(f"months must be within 0..{MAX_MONTHS}")
    shares = [float(t["share"]) for t in tiers]
    if any(not 0.0 <= s <= 1.0 for s in shares) or sum(shares) > 1.0 + _EPSILON:
        raise InvalidProjectionRequest("tier shares must be within 0..1 and sum to at most 1")
    if any(not float(t["price_monthly"]) >= 0.0 for t in tiers):
        raise InvalidProjectionRequest("tier prices must be >= 0")
    names = [str(t["name"]) for t in tiers]
    if len(set(names)) != len(names):
        raise InvalidProjectionRequest("tier names must be unique")


def project_revenue(request: Mapping[str, Any]) -> dict[str, Any]:
    """Return the RevenueProjected payload for a RevenueProjectionRequested payload.

    Missing fields take the domain defaults; impossible numbers raise
    InvalidProjectionRequest.
    """
    req = {**DEFAULTS, **{k: v for k, v in request.items() if v is not None}}
    tiers: Sequence[Mapping[str, Any]] = request.get("tiers", DEFAULT_TIERS)
    _check(req, tiers)
    churn = float(req["churn_rate"])
    conversion = float(req["conversion_rate"])
    growth = float(req["growth_rate"])
    acquisition = float(req["acquisition_per_month"])
    users = int(req["initial_users"])
    paid = 0
    months: list[dict[str, Any]] = []
    total = 0.0
    for month in range(1, int(req["months"]) + 1):
        users = users + whole(acquisition) - whole(users * churn)
        conversions = whole(max(0, users - paid) * conversion)
        paid = min(users, paid + conversions - whole(paid * churn))
        acquisition *= 1 + growth
        by_tier = {
            str(t["name"]): round(whole(paid * float(t["share"])) * float(t["price_monthly"]), 2)
            for t in tiers
        }
        revenue = round(sum(by_tier.values()), 2)
        total += revenue
        months.append(
            {
                "month": month,
                "users": users,
                "free_users": users - paid,
                "paid_users": paid,
                "revenue": revenue,
                "revenue_by_tier": by_tier,
            }
        )
    last_revenue = months[-1]["revenue"] if months else 0.0
    arpu = round(last_revenue / paid, 4) if paid else 0.0
    return {
        "projection_id": req["projection_id"],
        "business_model": req["business_model"],
        "months": months,
        "total_revenue": round(total, 2),
        "final_users": users,
        "final_paid_users": paid,
        "arpu": arpu,
        "ltv": round(arpu / churn, 2) if churn else None,
        "currency": req["currency"],
    }
