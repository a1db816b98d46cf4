"""The product's brain: MovieLens data, Spark ALS, serving, statistics, emotion, mood.

No Streamlit here, and nothing happens at import time. Modules, one concern each:

* ``settings``    every setting, overridable by environment variables
* ``movielens``   load + validate GroupLens releases; ``fetch`` downloads them; ``prepare`` converts
  a release once to typed Parquet (+ small summaries) under the data dir
* ``spark``       the Spark session from settings
* ``stats``       dataset statistics (pandas and Spark); ``stats_columnar`` the same from the Parquet
  (DuckDB + numpy over the summaries: any slice of 25 M ratings in well under a second)
* ``als``         bias-corrected ALS as a Spark ML estimator
* ``training``    split, fit, evaluate, tune, export; ``evaluation`` holds the metrics
* ``model_store`` saved model folders and the CURRENT pointer
* ``serving``     the in-memory index (recommend, similar, fold-in); ``lsh`` the Spark ANN path
* ``user_ratings`` SQLite store of ratings people enter
* ``jobs``        one training/tuning job at a time per server; the admin password
* ``mood``        emotion -> movies; ``emotion/`` the CNN, training and inference
"""

__all__ = ["settings", "movielens", "fetch", "prepare", "spark", "stats", "stats_columnar", "als", "training", "evaluation",
           "model_store", "serving", "lsh", "user_ratings", "jobs", "mood", "emotion"]
