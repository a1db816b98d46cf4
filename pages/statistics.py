"""Dataset statistics: headline numbers and Plotly charts of every engine statistic."""

import json

import streamlit as st

from engine.data.prepare import parquet_release, prepare_release, release_bytes
from engine.data.stats import (
    EmptySlice,
    Slice,
    compute_stats,
    dataset_label,
    parse_years,
    slice_bounds,
    slice_data,
    slice_figures,
    summarize,
    top_movies,
)
from engine.settings import get_settings
from pages._common import (
    MOVIE_COLUMNS,
    columnar_for,
    entered_page,
    for_display,
    friendly_errors,
    load_data,
    md_escape,
    through_navigation,
)
from pages._stats_charts import BUILDERS, TABS

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py


# A release bigger than this (CSV, uncompressed) is converted to Parquet on the first visit when
# `make run` / `python -m engine prepare-data` has not done it yet; a smaller one is read with pandas.
PANDAS_UP_TO = 64 << 20


@st.cache_data(show_spinner=False)  # the page says what it is doing (a cold load takes seconds)
def stats_for(location: str, part: Slice = Slice(), folder: str = ""):
    if folder:
        return columnar_for(folder).stats(part)
    return compute_stats(load_data(location), part=part)


@st.cache_resource(show_spinner=False, max_entries=64)
def charts_for(tab: str, location: str, part: Slice, folder: str) -> dict:
    """The figures of one chart tab for one slice, built once and shared by every session: Plotly
    Express takes ~50 ms a figure (0.4 s for the server's first), on every rerun before this.
    ``st.plotly_chart`` only reads a Figure, so one object serves everyone."""
    whole = stats_for(location, folder=folder)
    return BUILDERS[tab](stats_for(location, part, folder) if not part.everything else whole, whole, part)


@st.cache_data(show_spinner=False)
def bounds_for(location: str, folder: str = "") -> dict:
    """What the slice controls offer: genres, release years and rating years present in the data."""
    return columnar_for(folder).bounds() if folder else slice_bounds(load_data(location))


def parquet_for(location: str) -> str:
    """The release's Parquet folder ("" for pandas): converted here, visibly, when big and not yet done."""
    settings = get_settings()
    folder = parquet_release(settings)
    if folder is None and release_bytes(location) > PANDAS_UP_TO:
        with st.status(
            "Converting the release to Parquet (once; minutes for tens of millions of ratings)…", expanded=True
        ) as status:
            folder = prepare_release(settings, progress=status.text)
            status.update(label="Converted to Parquet.", state="complete", expanded=False)
    return str(folder or "")


TOP_COLUMNS = {
    **MOVIE_COLUMNS,
    "movieId": None,
    "ratings": st.column_config.NumberColumn("Ratings", format="%d"),
    "mean_rating": st.column_config.NumberColumn("Mean rating", format="%.2f ⭐"),
}
TOP_ORDER = ["title", "ratings", "mean_rating", "genres", "similar"]  # the figures before what may scroll


@st.cache_data(show_spinner=False)
def top_for(location: str, part: Slice, by: str, min_ratings: int, folder: str = ""):
    if folder:
        return columnar_for(folder).top_movies(part, by=by, min_ratings=min_ratings, n=20)
    return top_movies(slice_data(load_data(location), part), by=by, min_ratings=min_ratings, n=20)


def _plain(value):
    """numpy numbers as JSON numbers."""
    return value.item() if hasattr(value, "item") else str(value)


def _span(years: tuple[int, int]) -> str:
    lo, hi = years
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _year_range(where, label: str, bounds: tuple[int, int] | None, key: str, help_text: str) -> tuple[int, int] | None:
    """A range slider over ``bounds`` in ``where``; a single year has nothing to choose, so it is just said."""
    if bounds is None:
        return None
    if bounds[0] == bounds[1]:
        where.caption(f"{label}: {bounds[0]} only")
        return bounds
    return where.slider(label, *bounds, key=key, help=help_text, persist_state="session")


def slice_controls(bounds: dict) -> Slice:
    """The sidebar's slice (genres, release years, years rated), seeded from a shared link.

    The controls are a form: moving a slider (by mouse or one key press at a time) costs
    nothing until *Apply*, which recomputes the page once (a full rerun per key press took
    44 s for one slider move). A link's ``?genres=Comedy,Drama&released=1990-1999&rated=2000-2010``
    sets the controls when it is followed; every applied change writes the address bar back, so
    it always links to what is shown. Coming back to the page without a link keeps the last
    slice. A bad value in a link is named and ignored.
    """
    q = st.query_params
    link = any(q.get(name) for name in ("genres", "released", "rated"))
    if "slice_genres" not in st.session_state or (link and entered_page()):  # a link names the slice
        genres = [g.strip() for g in q.get("genres", "").split(",") if g.strip()]
        unknown = [g for g in genres if g not in bounds["genres"]]
        if unknown:
            st.warning(f"The link names a genre this data does not have: {md_escape(repr(unknown[0]))}; left out.")
        st.session_state["slice_genres"] = [g for g in genres if g in bounds["genres"]]
        for name in ("released", "rated"):
            if bounds[name] is None:
                continue
            lo, hi = bounds[name]
            span = (lo, hi)
            if q.get(name):
                try:
                    a, b = parse_years(q[name], name)
                    span = (max(lo, a), min(hi, b)) if a <= hi and b >= lo else span
                except ValueError as exc:
                    st.warning(f"In the link: {md_escape(exc)} Showing every year.")
            st.session_state[f"slice_{name}"] = span

    st.sidebar.header("Slice the data")
    with st.sidebar.form("slice_form", border=False, enter_to_submit=False):
        genres = st.multiselect(
            "Genres (any of)", bounds["genres"], key="slice_genres", placeholder="All genres", persist_state="session"
        )
        released = _year_range(
            st,
            "Released",
            bounds["released"],
            "slice_released",
            "The year in the movie's title. With a limit, movies without one are left out.",
        )
        rated = _year_range(
            st, "Ratings given", bounds["rated"], "slice_rated", "Calendar year (UTC) each rating and tag was given."
        )
        st.form_submit_button(
            "Apply",
            key="slice_apply",
            icon=":material/filter_alt:",
            help="Recompute the page for these genres and years (once, not per move).",
        )
    part = Slice(
        genres=tuple(genres),  # a full range is no limit (and keeps movies without a year)
        released=None if released is None or tuple(released) == bounds["released"] else tuple(released),
        rated=None if rated is None or tuple(rated) == bounds["rated"] else tuple(rated),
    )
    for name, value in (
        ("genres", ",".join(part.genres)),
        ("released", part.released and _span(part.released)),
        ("rated", part.rated and _span(part.rated)),
    ):
        if value:
            q[name] = value
        else:
            q.pop(name, None)
    if not part.everything and st.sidebar.button(
        "Show everything", key="slice_reset", icon=":material/filter_alt_off:"
    ):
        for key in ("slice_genres", "slice_released", "slice_rated"):
            st.session_state.pop(key, None)
        for name in ("genres", "released", "rated"):
            q.pop(name, None)
        st.rerun()
    return part


st.title("📊 Dataset statistics")
location = get_settings().movielens_data
name = dataset_label(location)  # the dataset's name; the server's path only in the expander at the end
with friendly_errors("Loading the dataset"):
    # A cold load reads and checks the release, then counts everything: seconds, so it is said.
    with st.spinner(
        f"Reading {md_escape(name)} and computing its statistics (the first visit takes a few seconds)…", show_time=True
    ):
        folder = parquet_for(location)
        whole = stats_for(location, folder=folder)
        bounds = bounds_for(location, folder)
    part = slice_controls(bounds)
    try:
        with st.spinner(f"Computing the statistics of {md_escape(part.describe())}…", show_time=True):
            s = stats_for(location, part, folder)
    except EmptySlice as exc:
        st.caption(f"Data: {md_escape(name)}")
        st.warning(md_escape(exc))
        st.stop()
    c = s.counts
    if part.everything:
        st.caption(
            f"Data: {md_escape(name)} · To look at part of it (genres, release years, years rated), "
            "use *Slice the data* in the sidebar."
        )
    else:
        st.info(
            f"**Slice: {md_escape(part.describe())}**: {md_escape(slice_figures(s, whole))}. "
            "The address bar links to this slice.",
            icon="🔎",
        )
    # In a slice, a movie counts when it has a rating there (a slice by years rated keeps every movie).
    movies = (
        ("Movies", c["movies"], "Never rated", c["movies_never_rated"])
        if part.everything
        else ("Movies rated", c["rated_movies"], "Not rated here", c["movies_never_rated"])
    )
    cols = st.columns(6)
    for col, (label, value) in zip(
        cols,
        [
            ("Users", c["users"]),
            movies[:2],
            ("Ratings", c["ratings"]),
            ("Tags", c["tags"]),
            movies[2:],
            ("Rated once", c["movies_rated_once"]),
        ],
    ):
        col.metric(label, f"{value:,}")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.metric("Sparsity of the user x movie matrix", f"{c['sparsity']:.2%}")
    payload = {"dataset": name, "slice": part.describe(), **s.as_dict()}  # as `engine stats --json`
    right.download_button(
        "Download as JSON",
        json.dumps(payload, indent=1, default=_plain),
        file_name="movielens-stats.json" if part.everything else "movielens-stats-slice.json",
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",
        help="These statistics (of the slice shown), as `python -m engine stats --json` prints them.",
    )

    # The charts in three tabs, each drawn only while open: all nine at once took ~3 s to draw in a
    # fresh browser on a 2-core machine (Plotly), at any size of data.
    ratings_tab, genres_tab, tags_tab = st.tabs(list(TABS), key="stats_tab", on_change="rerun")
    if ratings_tab.open:
        with ratings_tab:
            figs = charts_for("Ratings", location, part, folder)
            left, right = st.columns(2)
            for column, dist, per in ((left, s.ratings_per_user, "user"), (right, s.ratings_per_movie, "movie")):
                column.plotly_chart(figs[f"per_{per}"], width="stretch")
                m = summarize(dist)
                column.caption(
                    f"Per {per}: median {m['median']:g}, mean {m['mean']:.1f}, min {m['min']:,}, max {m['max']:,} ratings."
                )
            st.plotly_chart(figs["values"], width="stretch")
            if not part.everything:
                mean = lambda values: (values["rating"] * values["count"]).sum() / values["count"].sum()
                st.caption(
                    f"Mean rating {mean(s.rating_values):.2f} in this slice, {mean(whole.rating_values):.2f} over all ratings."
                )
    if genres_tab.open:
        with genres_tab:
            figs = charts_for("Genres and years", location, part, folder)
            left, right = st.columns(2)
            left.plotly_chart(figs["genres"], width="stretch")
            if figs["decades"] is not None:
                right.plotly_chart(figs["decades"], width="stretch")
                right.caption("The year comes from the title; movies without one are left out of this chart.")
            else:
                right.info("No movie in this slice has a year in its title.")
            if figs["trend"] is not None:
                st.plotly_chart(figs["trend"], width="stretch")
                st.caption("A movie with several genres counts for each, so the shares add up to more than 100 %.")
            st.plotly_chart(figs["per_year"], width="stretch")

    if tags_tab.open:
        with tags_tab:
            figs = charts_for("Popularity and tags", location, part, folder)
            left, right = st.columns(2)
            left.plotly_chart(figs["lorenz"], width="stretch")
            spread = s.concentration()
            left.caption(
                f"The most-rated 10 % of rated movies hold {spread['top_10_percent_share']:.0%} of the ratings; "
                f"Gini coefficient {spread['gini']:.2f} (0: every movie rated as often, 1: one movie has them all). "
                "This long tail is why the recommendations page offers a minimum number of ratings."
            )
            if figs["tags"] is not None:
                right.plotly_chart(figs["tags"], width="stretch")
            else:
                right.info("No tags in this slice." if not part.everything else "This dataset has no tags.")

    st.subheader("Most-rated and best-rated movies")
    # Tabs, each table the page's full width: side by side at 1280 px, Genres and the links were cut off.
    # Each table drawn while its tab is open, as the charts are.
    most_tab, best_tab = st.tabs(["Most rated", "Best rated"], key="stats_table", on_change="rerun")
    if most_tab.open:
        most_tab.dataframe(
            for_display(top_for(location, part, "count", 1, folder)),
            hide_index=True,
            width="stretch",
            column_config=TOP_COLUMNS,
            column_order=TOP_ORDER,
        )
    if best_tab.open:
        min_ratings = best_tab.slider(
            "Best-rated: minimum number of ratings", 1, 300, 50, step=5, key="stats_min", persist_state="session"
        )
        best_tab.caption(f"Best rated (at least {min_ratings} ratings)")
        best = top_for(location, part, "mean", min_ratings, folder)
        if best.empty:
            best_tab.info(f"No movie in this slice has {min_ratings} ratings. Lower the minimum above.")
        else:
            best_tab.dataframe(
                for_display(best), hide_index=True, width="stretch", column_config=TOP_COLUMNS, column_order=TOP_ORDER
            )

with st.expander("Where the data comes from"):
    st.caption("The server reads the release from `MOVIELENS_DATA`:")
    st.text(location)
