"""The product's brain: MovieLens data, Spark ALS, serving, statistics, emotion, mood.

No Streamlit here, and nothing happens at import time. One package per area:

* ``data/``         MovieLens: load + validate, fetch, prepare (Parquet), statistics
* ``recommender/``  ALS and top picks, training + evaluation, saved models, the serving index, LSH, mood
* ``people/``       ratings people enter (SQLite profiles) and rating files (import, export)
* ``emotion/``      the emotion CNN: FER2013 data, training, face + emotion inference
* ``cli/``          ``python -m engine ...``, one module per area

and, at the top, what every area shares:

* ``settings``      every setting, overridable by environment variables
* ``spark``         the Spark session from settings
* ``jobs``          one training/tuning job at a time per server; the admin password
"""

__all__ = ["settings", "spark", "jobs", "data", "recommender", "people", "emotion", "cli"]
