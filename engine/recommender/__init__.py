"""The movie recommender: bias-corrected ALS on Spark (``als``) and implicit ALS for top picks (``picks``, with
EASE beside it: ``ease``), blended with a movie neighbourhood into the predicted stars (``neighbours``);
training and export (``training``), tuning over a grid (``tuning``) with its metrics (``evaluation``); saved model folders
(``model_store``), their tables read back checked (``model_tables``); the in-memory index that serves
them without Spark (``serving``, made of ``catalogue``, ``scoring`` and ``fold_in``); similar movies with
Spark LSH (``lsh``); movies for a mood (``mood``).

Importing this package imports none of its modules (``als`` and ``training`` need pyspark).
"""

__all__ = [
    "als",
    "picks",
    "ease",
    "neighbours",
    "training",
    "tuning",
    "evaluation",
    "model_store",
    "model_tables",
    "serving",
    "catalogue",
    "scoring",
    "fold_in",
    "lsh",
    "mood",
]
