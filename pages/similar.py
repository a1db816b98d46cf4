"""Similar movies: exact cosine on the serving index, or Spark LSH with its recall and time."""

import time

import plotly.express as px
import streamlit as st

from engine.data.movie_profile import movie_profile
from engine.data.prepare import parquet_release
from engine.recommender.lsh import LSHIndex, recall_at_k
from engine.recommender.serving import UnknownIdError
from engine.settings import get_settings
from pages._common import (
    MOVIE_COLUMNS,
    columnar_for,
    entered_page,
    for_display,
    friendly_errors,
    listed,
    load_data,
    load_index,
    md_escape,
    model_dir,
    spark_session,
    through_navigation,
    typed_movie,
)

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py

st.title("🎞️ Similar movies")
index = load_index()
if index is None:
    st.stop()


@st.cache_resource(
    show_spinner="Building the Spark LSH index (once per model: the movies are hashed now, not at each query)…",
    max_entries=2,
)
def lsh_index(folder: str, _spark) -> LSHIndex:
    from engine.recommender.model_tables import read_serving_tables

    tables = read_serving_tables(folder, with_ratings=False)  # factors and catalogue only
    return LSHIndex(_spark, tables["item_frame"], tables["movies"])


@st.cache_data(show_spinner=False, max_entries=256)
def about(location: str, movie_id: int, folder: str = ""):
    """The movie's profile in the ratings data, or None when the data lacks it (another release).
    From the prepared Parquet's summaries when there is one (at 25 M ratings the pandas path reads
    the whole release: two minutes), else with pandas."""
    try:
        if folder:
            return columnar_for(folder).movie_profile(movie_id)
        return movie_profile(load_data(location), movie_id)
    except ValueError:
        return None


def about_panel(movie_id: int, title: str) -> None:
    """A collapsed *About* panel: how many rated the movie, how, when, and the tags people gave it."""
    settings = get_settings()
    p = about(settings.movielens_data, movie_id, str(parquet_release(settings) or ""))
    if p is None or not p.ratings:
        return
    label = f"About {md_escape(title)}: {p.ratings:,} ratings, mean {p.mean_rating:.2f} ⭐"
    # Drawn only while open: its chart was the page's only Plotly chart, so a closed panel made every
    # visit load and run Plotly's code (~1.5 s in a fresh browser). Each movie's panel starts closed.
    panel = st.expander(label, icon=":material/info:", key="sim_about", on_change="rerun")
    if not panel.open:
        return
    with panel:
        left, right = st.columns([1, 2])
        left.metric("Ratings", f"{p.ratings:,}", help="Ratings in the MovieLens data")
        left.caption(
            f"#{p.popularity_rank:,} most rated · by {p.users_share:.0%} of users · "
            f"rated {p.years_rated[0]}–{p.years_rated[1]}"
        )
        left.metric("Mean rating", f"{p.mean_rating:.2f} ⭐")
        fig = px.bar(p.rating_values, x="rating", y="count", height=240, labels={"rating": "stars", "count": "ratings"})
        fig.update_xaxes(dtick=0.5)
        fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
        right.plotly_chart(fig, width="stretch")
        if len(p.tags):
            st.markdown(
                "Tags: "
                + " ".join(
                    f":gray-badge[{md_escape(t)} · {c}]"  # a badge keeps "\]"
                    for t, c in p.tags.itertuples(index=False)
                )
            )


MAX_ALSO = 4
catalogue = index.search_titles("", limit=len(index.item_ids))
options = index.readable_titles[catalogue["movieId"]].to_dict()  # most-rated first
linked = bool(st.query_params.get("movie")) and entered_page()  # a link followed names the movie(s)
if "sim_movie" not in st.session_state or linked:
    st.session_state.sim_movie = 471 if 471 in options else int(catalogue["movieId"].iloc[0])
    if asked := st.query_params.get("movie"):  # a shared link: /similar?movie=2571 or ?movie=the+matrix
        try:
            st.session_state.sim_movie = index.find_movie(asked)
        except UnknownIdError as exc:
            st.warning(
                f"The link asks for movie “{md_escape(asked)}”: {md_escape(exc)} "
                f"Showing {md_escape(options[st.session_state.sim_movie])} instead."
            )
listed_movies, typed = listed(list(options), st.session_state.get("sim_movie"))
movie = st.selectbox(
    "Movie (type to search" + (", or type any title or id)" if typed else ")"),
    listed_movies,
    format_func=lambda m: options.get(m, m),
    key="sim_movie",
    persist_state="session",
    accept_new_options=typed,
)
movie = typed_movie(movie, index)
if movie is None:
    st.stop()
if "sim_also" not in st.session_state or linked:  # a shared link may name more: ?movie=858&also=1221,1213
    also_asked = [a for a in st.query_params.get("also", "").split(",") if a.strip()]
    st.session_state.sim_also = [int(a) for a in also_asked if a.strip().isdigit() and int(a) in options][:MAX_ALSO]
listed_also, typed = listed(list(options), *st.session_state.get("sim_also", ()))
also = st.multiselect(
    "…and also like (optional: several movies at once)",
    listed_also,
    format_func=lambda m: options.get(m, m),
    accept_new_options=typed,
    key="sim_also",
    max_selections=MAX_ALSO,
    placeholder="Add movies to blend in",
    persist_state="session",
    help="The list is then close to all of them at once (the mean of their directions "
    "in the model's taste space), each counting the same.",
)
also = [m for m in (typed_movie(m, index) for m in also) if m is not None and m != movie]
st.query_params["movie"] = str(movie)  # the address bar now links to this movie (and the others)
if also:
    st.query_params["also"] = ",".join(map(str, also))
else:
    st.query_params.pop("also", None)
cols = st.columns(3)
n = cols[0].slider("How many", 1, 30, 10, key="sim_n", persist_state="session")
min_ratings = cols[1].slider(
    "Minimum ratings",
    0,
    100,
    10,
    key="sim_min",
    help="Movies with few ratings have noisy factors.",
    persist_state="session",
)
method = cols[2].radio("Method", ["Exact", "Spark LSH"], horizontal=True, key="sim_method", persist_state="session")

with friendly_errors("Reading the movie's ratings"):
    about_panel(movie, options[movie])
st.subheader("Most similar to " + " + ".join(md_escape(options[m]) for m in [movie, *also]))
with friendly_errors("Finding similar movies"):
    t0 = time.perf_counter()
    exact = index.similar(movie, n, min_ratings=min_ratings, also=also)
    exact_ms = (time.perf_counter() - t0) * 1000
    result = exact
    if method == "Spark LSH" and also:
        st.info("Spark LSH looks around one movie; for several at once the list below is the exact search.")
        st.caption(f"Exact cosine over {len(index.item_ids):,} movies in {exact_ms:.2f} ms.")
    elif method == "Spark LSH":
        lsh = lsh_index(str(model_dir()), spark_session())  # waits (spinner) while Spark starts
        t0 = time.perf_counter()
        result = lsh.similar(movie, n, min_ratings=min_ratings)
        lsh_ms = (time.perf_counter() - t0) * 1000
        recall = recall_at_k({movie: exact["movieId"].tolist()}, {movie: result["movieId"].tolist()})
        m = st.columns(3)
        m[0].metric(f"LSH recall@{n} vs exact", f"{recall:.0%}")
        m[1].metric("LSH time", f"{lsh_ms:,.0f} ms")
        m[2].metric("Exact time", f"{exact_ms:,.2f} ms")
        st.caption(
            f"LSH time is this query's alone: the index (the movies' hashes) was built once for "
            f"this model, in {lsh.build_seconds:.1f} s, and is reused by every query."
        )
    else:
        st.caption(f"Exact cosine over {len(index.item_ids):,} movies in {exact_ms:.2f} ms.")
    meta = index.movies.set_index("movieId")[["imdbId", "tmdbId"]]
    shown = for_display(result.join(meta, on="movieId"))
    st.dataframe(
        shown[["title", "year", "genres", "score", "n_ratings", "similar", "IMDb", "TMDB"]],
        hide_index=True,
        width="stretch",
        column_config=MOVIE_COLUMNS,
    )
