"""Dataset statistics: headline numbers and Plotly charts of every engine statistic."""
import plotly.express as px
import streamlit as st

from engine.settings import get_settings
from engine.stats import compute_stats, log_binned, summarize, top_movies
from pages._common import MOVIE_COLUMNS, for_display, friendly_errors, load_data, through_navigation

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py


@st.cache_data(show_spinner="Computing statistics…")
def stats_for(location: str):
    return compute_stats(load_data(location))


TOP_COLUMNS = {**MOVIE_COLUMNS, "movieId": None,
               "ratings": st.column_config.NumberColumn("Ratings", format="%d"),
               "mean_rating": st.column_config.NumberColumn("Mean rating", format="%.2f ⭐")}
TOP_ORDER = ["title", "ratings", "mean_rating", "genres", "similar"]   # the figures before what may scroll


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
    for column, dist, per, who, axis in ((left, s.ratings_per_user, "user", "users", "ratings by a user"),
                                         (right, s.ratings_per_movie, "movie", "movies", "ratings of a movie")):
        # Logarithmic bins: exact counts on log axes draw a comb of single users at the long end.
        fig = px.bar(log_binned(dist), x="label", y=who, log_y=True, hover_data=["lo", "hi"],
                     title=f"Ratings per {per} (logarithmic bins)", labels={"label": axis})
        fig.update_yaxes(dtick=1)  # ticks at 1, 10, 100, ...: minor ticks crowd a short log axis
        fig.update_traces(hovertemplate=f"%{{customdata[0]}}–%{{customdata[1]}} ratings: %{{y:,}} {who}"
                                        "<extra></extra>")
        column.plotly_chart(fig, width="stretch")
        m = summarize(dist)
        column.caption(f"Per {per}: median {m['median']:g}, mean {m['mean']:.1f}, "
                       f"min {m['min']:,}, max {m['max']:,} ratings.")

    left, right = st.columns(2)
    height = max(450, 22 * len(s.genres) + 120)  # room to name every genre
    fig = px.bar(s.rating_values, x="rating", y="count", title="Rating values", height=height)
    fig.update_xaxes(dtick=0.5)
    left.plotly_chart(fig, width="stretch")
    fig = px.bar(s.genres.sort_values("movies"), x="movies", y="genre", orientation="h",
                 color="mean_rating", color_continuous_scale="Viridis", height=height,
                 title="Movies per genre, coloured by mean rating",
                 hover_data={"ratings": ":,", "mean_rating": ":.2f"}, labels={"mean_rating": "mean rating"})
    fig.update_yaxes(dtick=1)  # every genre named, not every other one
    right.plotly_chart(fig, width="stretch")

    left, right = st.columns(2)
    height = max(450, 22 * len(s.top_tags) + 120)
    fig = px.line(s.ratings_per_year, x="year", y="ratings", markers=True, title="Ratings per year",
                  height=height, hover_data={"mean_rating": ":.2f"}, labels={"mean_rating": "mean rating"})
    left.plotly_chart(fig, width="stretch")
    if len(s.top_tags):
        fig = px.bar(s.top_tags.sort_values("count"), x="count", y="tag", orientation="h",
                     title="Top tags", height=height)
        fig.update_yaxes(dtick=1)
        right.plotly_chart(fig, width="stretch")
    else:
        right.info("This dataset has no tags.")

    st.subheader("Most-rated and best-rated movies")
    min_ratings = st.slider("Best-rated: minimum number of ratings", 1, 300, 50, step=5)
    left, right = st.columns(2)
    left.caption("Most rated")
    left.dataframe(for_display(top_for(location, "count", 1)), hide_index=True, width="stretch",
                   column_config=TOP_COLUMNS, column_order=TOP_ORDER)
    right.caption(f"Best rated (at least {min_ratings} ratings)")
    right.dataframe(for_display(top_for(location, "mean", min_ratings)), hide_index=True, width="stretch",
                    column_config=TOP_COLUMNS, column_order=TOP_ORDER)
