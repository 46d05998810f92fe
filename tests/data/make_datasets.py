"""Write the sample datasets used by the template and its tests.

Deterministic: running it again rewrites byte-identical files.
Run from anywhere: python tests/data/make_datasets.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Copier renders this file name to iris.csv, and to nothing when the user brings a dataset.
IRIS = REPO / "template" / "data" / "{% if not dataset_path %}iris.csv{% endif %}"


def blank_out(df: pd.DataFrame, columns: list[str], fraction: float, rng) -> pd.DataFrame:
    """Return a copy with about `fraction` of the cells in `columns` set to missing."""
    out = df.copy()
    for column in columns:
        mask = rng.random(len(out)) < fraction
        values = out[column]
        # Nullable ints keep "221" as "221" instead of turning it into "221.0".
        if pd.api.types.is_integer_dtype(values):
            values = values.astype("Int64")
        out[column] = values.mask(mask)
    return out


def iris() -> pd.DataFrame:
    data = load_iris()
    frame = pd.DataFrame(
        data.data, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"]
    ).round(1)
    frame["species"] = [str(data.target_names[i]) for i in data.target]
    return frame


def penguins_like(rng) -> pd.DataFrame:
    # Per species: count, islands with weights, and (mean, sd) of each measurement.
    species = {
        "Adelie": (
            130,
            {"Biscoe": 0.3, "Dream": 0.35, "Torgersen": 0.35},
            {"bill_length_mm": (38.8, 2.6), "bill_depth_mm": (18.3, 1.2)},
            {"flipper_length_mm": (190.0, 6.5), "body_mass_g": (3700.0, 450.0)},
        ),
        "Chinstrap": (
            70,
            {"Dream": 1.0},
            {"bill_length_mm": (48.8, 3.3), "bill_depth_mm": (18.4, 1.1)},
            {"flipper_length_mm": (196.0, 7.1), "body_mass_g": (3730.0, 380.0)},
        ),
        "Gentoo": (
            100,
            {"Biscoe": 1.0},
            {"bill_length_mm": (47.5, 3.1), "bill_depth_mm": (15.0, 1.0)},
            {"flipper_length_mm": (217.0, 6.5), "body_mass_g": (5080.0, 500.0)},
        ),
    }
    parts = []
    for name, (count, islands, bill, body) in species.items():
        part = {"island": rng.choice(list(islands), size=count, p=list(islands.values()))}
        for column, (mean, sd) in {**bill, **body}.items():
            part[column] = rng.normal(mean, sd, size=count)
        sex = rng.choice(["male", "female"], size=count)
        # Males are a little larger, as in the real birds.
        bump = np.where(sex == "male", 1.0, -1.0)
        part["body_mass_g"] = part["body_mass_g"] + bump * 200.0
        part["bill_length_mm"] = part["bill_length_mm"] + bump * 1.0
        part["sex"] = sex
        part["species"] = [name] * count
        parts.append(pd.DataFrame(part))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    frame["bill_length_mm"] = frame["bill_length_mm"].round(1)
    frame["bill_depth_mm"] = frame["bill_depth_mm"].round(1)
    frame["flipper_length_mm"] = frame["flipper_length_mm"].round(0).astype(int)
    frame["body_mass_g"] = (frame["body_mass_g"] / 25.0).round(0).astype(int) * 25
    frame = frame[
        [
            "island",
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "body_mass_g",
            "sex",
            "species",
        ]
    ]
    features = [c for c in frame.columns if c != "species"]
    return blank_out(frame, features, 0.05, rng)


def housing_like(rng) -> pd.DataFrame:
    count = 400
    premium = {"Riverside": 1.35, "Old Town": 1.2, "Hillcrest": 1.05, "Eastfield": 0.9}
    premium["Docklands"] = 0.8
    neighbourhood = rng.choice(list(premium), size=count)
    area = rng.normal(85.0, 25.0, size=count).clip(30.0, 200.0)
    bedrooms = np.clip(np.round(area / 28.0 + rng.normal(0.0, 0.6, size=count)), 1, 6)
    bathrooms = np.clip(np.round(bedrooms / 2.0 + rng.normal(0.0, 0.4, size=count)), 1, 4)
    age = rng.integers(0, 80, size=count)
    distance = rng.gamma(2.0, 3.0, size=count).round(1)
    price = (
        2600.0 * area * np.array([premium[n] for n in neighbourhood])
        + 9000.0 * bathrooms
        - 900.0 * age
        - 4500.0 * distance
        + rng.normal(0.0, 15000.0, size=count)
    )
    frame = pd.DataFrame(
        {
            "neighbourhood": neighbourhood,
            "area_sqm": area.round(1),
            "bedrooms": bedrooms.astype(int),
            "bathrooms": bathrooms.astype(int),
            "age_years": age,
            "distance_to_centre_km": distance,
            "price": (price / 500.0).round(0) * 500.0,
        }
    )
    frame["price"] = frame["price"].clip(lower=40000.0).astype(int)
    features = [c for c in frame.columns if c != "price"]
    return blank_out(frame, features, 0.03, rng)


def binary_numeric(rng) -> pd.DataFrame:
    count = 200
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=count, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, size=count)
    charges = rng.normal(65.0, 20.0, size=count).clip(15.0, 130.0).round(2)
    calls = rng.poisson(1.5, size=count)
    paperless = rng.choice(["yes", "no"], size=count)
    contract_risk = np.select(
        [contract == "month-to-month", contract == "one-year"], [1.2, -0.3], default=-1.5
    )
    logit = (
        contract_risk
        - 0.05 * tenure
        + 0.03 * (charges - 65.0)
        + 0.6 * calls
        + 0.3 * (paperless == "yes")
        - 0.2
    )
    churned = (rng.random(count) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract": contract,
            "paperless_billing": paperless,
            "churned": churned,
        }
    )
    return blank_out(frame, ["monthly_charges", "contract"], 0.03, rng)


def main() -> None:
    outputs = {
        IRIS: iris(),
        HERE / "penguins_like.csv": penguins_like(np.random.default_rng(20240501)),
        HERE / "housing_like.csv": housing_like(np.random.default_rng(20240502)),
        HERE / "binary_numeric.csv": binary_numeric(np.random.default_rng(20240503)),
    }
    for path, frame in outputs.items():
        frame.to_csv(path, index=False, lineterminator="\n")
        print(f"wrote {path} ({len(frame)} rows, {frame.shape[1]} columns)")


if __name__ == "__main__":
    main()
