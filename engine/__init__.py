"""The product's brain: MovieLens data, Spark ALS, serving, statistics, emotion, mood."""
