"""Dataset statistics: headline numbers and Plotly charts of every engine statistic."""
import plotly.express as px
import streamlit as st

from engine.settings import get_settings
from engine.stats import compute_stats, top_movies
from pages._common import friendly_errors, load_data, through_navigation

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py


@st.cache_data(show_spinner="Computing statistics…")
def stats_for(location: str):
    return compute_stats(load_data(location))


@st.cache_data(show_spinner=False)
def top_for(location: str, by: str, min_ratings: int):
    return top_movies(load_data(location), by=by, min_ratings=min_ratings, n=20)


st.title("📊 Dataset statistics")
location = get_settings().movielens_data
with friendly_errors("Loading the dataset"):
    s = stats_for(location)
    c = s.counts
    st.caption(f"Source: {location}")
    cols = st.columns(6)
    for col, (label, value) in zip(cols, [("Users", c["users"]), ("Movies", c["movies"]),
                                          ("Ratings", c["ratings"]), ("Tags", c["tags"]),
                                          ("Never rated", c["movies_never_rated"]),
                                          ("Rated once", c["movies_rated_once"])]):
        col.metric(label, f"{value:,}")
    st.metric("Sparsity of the user x movie matrix", f"{c['sparsity']:.2%}")

    left, right = st.columns(2)
    fig = px.bar(s.ratings_per_user, x="n_ratings", y="users", log_x=True, log_y=True,
                 title="Ratings per user (log-log)", labels={"n_ratings": "ratings by a user"})
    left.plotly_chart(fig, width="stretch")
    fig = px.bar(s.ratings_per_movie, x="n_ratings", y="movies", log_x=True, log_y=True,
                 title="Ratings per movie (log-log)", labels={"n_ratings": "ratings of a movie"})
    right.plotly_chart(fig, width="stretch")

    left, right = st.columns(2)
    fig = px.bar(s.rating_values, x="rating", y="count", title="Rating values")
    fig.update_xaxes(dtick=0.5)
    left.plotly_chart(fig, width="stretch")
    fig = px.bar(s.genres.sort_values("movies"), x="movies", y="genre", orientation="h",
                 title="Movies per genre", hover_data=["ratings"])
    right.plotly_chart(fig, width="stretch")

    left, right = st.columns(2)
    fig = px.line(s.ratings_per_year, x="year", y="ratings", markers=True, title="Ratings per year")
    left.plotly_chart(fig, width="stretch")
    if len(s.top_tags):
        fig = px.bar(s.top_tags.sort_values("count"), x="count", y="tag", orientation="h",
                     title="Top tags")
        right.plotly_chart(fig, width="stretch")
    else:
        right.info("This dataset has no tags.")

    st.subheader("Most-rated and best-rated movies")
    min_ratings = st.slider("Best-rated: minimum number of ratings", 1, 300, 50, step=5)
    left, right = st.columns(2)
    left.caption("Most rated")
    left.dataframe(top_for(location, "count", 1), hide_index=True, width="stretch")
    right.caption(f"Best rated (at least {min_ratings} ratings)")
    right.dataframe(top_for(location, "mean", min_ratings), hide_index=True, width="stretch")
