"""Constants shared by the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "territories" / "cpts_seeds.csv"

# Seed 002 (communiqué CPAM de la Loire / ARS ARA): the communes of the CPTS Vallée du Gier,
# in the order and spelling of the press release (typographic apostrophe in L’Horme).
VALLEE_DU_GIER = (
    "Le Bessat, Cellieu, Chagnon, Châteauneuf, Dargoire, Doizieux, Farnay, La Grand-Croix, "
    "L’Horme, Lorette, Pavezin, Rive-de-Gier, Saint-Chamond, Sainte-Croix-en-Jarez, Genilac, "
    "Saint-Joseph, Saint-Martin-la-Plaine, Saint-Paul-en-Jarez, Saint-Romain-en-Jarez, Tartaras, "
    "La Terrasse-sur-Dorlay, Valfleury, La Valla-en-Gier, Longes, Trèves, Marcenod, "
    "Saint-Christo-en-Jarez"
).split(", ")
