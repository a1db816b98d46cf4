"""Dataset statistics: headline numbers and Plotly charts of every engine statistic."""

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from engine.data.prepare import parquet_release, prepare_release, release_bytes
from engine.data.stats import (
    EmptySlice,
    Slice,
    compute_stats,
    concentration,
    dataset_label,
    log_binned,
    parse_years,
    slice_bounds,
    slice_data,
    slice_figures,
    summarize,
    top_movies,
)
from engine.settings import get_settings
from pages._charts import SCALE, SERIES
from pages._common import (
    MOVIE_COLUMNS,
    chart_text,
    columnar_for,
    entered_page,
    for_display,
    friendly_errors,
    load_data,
    md_escape,
    through_navigation,
)

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py


# A release bigger than this (CSV, uncompressed) is converted to Parquet on the first visit when
# `make run` / `python -m engine prepare-data` has not done it yet; a smaller one is read with pandas.
PANDAS_UP_TO = 64 << 20


@st.cache_data(show_spinner=False)  # the page says what it is doing (a cold load takes seconds)
def stats_for(location: str, part: Slice = Slice(), folder: str = ""):
    if folder:
        return columnar_for(folder).stats(part)
    return compute_stats(load_data(location), part=part)


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
    ratings_tab, genres_tab, tags_tab = st.tabs(
        ["Ratings", "Genres and years", "Popularity and tags"], key="stats_tab", on_change="rerun"
    )
    if ratings_tab.open:
        with ratings_tab:
            left, right = st.columns(2)
            for column, dist, per, who, axis in (
                (left, s.ratings_per_user, "user", "users", "ratings by a user"),
                (right, s.ratings_per_movie, "movie", "movies", "ratings of a movie"),
            ):
                # Logarithmic bins: exact counts on log axes draw a comb of single users at the long end.
                fig = px.bar(
                    log_binned(dist),
                    x="label",
                    y=who,
                    log_y=True,
                    hover_data=["lo", "hi"],
                    title=f"Ratings per {per} (logarithmic bins)",
                    labels={"label": axis},
                )
                fig.update_yaxes(dtick=1)  # ticks at 1, 10, 100, ...: minor ticks crowd a short log axis
                fig.update_traces(
                    hovertemplate=f"%{{customdata[0]}}–%{{customdata[1]}} ratings: %{{y:,}} {who}<extra></extra>"
                )
                column.plotly_chart(fig, width="stretch")
                m = summarize(dist)
                column.caption(
                    f"Per {per}: median {m['median']:g}, mean {m['mean']:.1f}, min {m['min']:,}, max {m['max']:,} ratings."
                )

            if part.everything:
                fig = px.bar(s.rating_values, x="rating", y="count", title="Rating values", height=380)
            else:  # shares side by side: does this slice rate higher or lower than everyone?
                both = pd.concat(
                    [s.rating_values.assign(of="this slice"), whole.rating_values.assign(of="all ratings")]
                )
                both["share"] = both["count"] / both.groupby("of")["count"].transform("sum")
                fig = px.bar(
                    both,
                    x="rating",
                    y="share",
                    color="of",
                    barmode="group",
                    height=380,
                    color_discrete_sequence=SERIES,
                    title="Rating values: this slice against all ratings",
                    hover_data={"count": ":,"},
                    labels={"share": "share of ratings", "of": ""},
                )
                fig.update_yaxes(tickformat=".0%")
                fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
            fig.update_xaxes(dtick=0.5)
            st.plotly_chart(fig, width="stretch")
            if not part.everything:
                mean = lambda values: (values["rating"] * values["count"]).sum() / values["count"].sum()
                st.caption(
                    f"Mean rating {mean(s.rating_values):.2f} in this slice, {mean(whole.rating_values):.2f} over all ratings."
                )
    if genres_tab.open:
        with genres_tab:
            left, right = st.columns(2)
            height = max(450, 22 * len(s.genres) + 120)  # room to name every genre
            fig = px.bar(
                chart_text(s.genres.sort_values("movies"), "genre"),
                x="movies",
                y="genre",
                orientation="h",
                color="mean_rating",
                color_continuous_scale=SCALE,
                height=height,
                title="Movies per genre, coloured by mean rating",
                hover_data={"ratings": ":,", "mean_rating": ":.2f"},
                labels={"mean_rating": "mean rating"},
            )
            fig.update_yaxes(dtick=1)  # every genre named, not every other one
            left.plotly_chart(fig, width="stretch")

            if len(s.release_decades):
                decades = s.release_decades.assign(label=s.release_decades["decade"].astype(str) + "s")
                fig = px.bar(
                    decades,
                    x="label",
                    y="movies",
                    color="mean_rating",
                    color_continuous_scale=SCALE,
                    title="Movies per release decade, coloured by mean rating",
                    height=height,
                    hover_data={"ratings": ":,", "mean_rating": ":.2f", "label": False},
                    labels={"label": "released", "mean_rating": "mean rating"},
                )
                right.plotly_chart(fig, width="stretch")
                right.caption("The year comes from the title; movies without one are left out of this chart.")
            else:
                right.info("No movie in this slice has a year in its title.")
            if s.ratings_per_year["year"].nunique() > 1:
                top = s.genres.sort_values("ratings", ascending=False)["genre"].head(6).tolist()
                trend = s.genre_years[s.genre_years["genre"].isin(top)].merge(
                    s.ratings_per_year[["year", "ratings"]].rename(columns={"ratings": "of_year"}), on="year"
                )
                trend["share"] = trend["ratings"] / trend["of_year"]
                trend, top = chart_text(trend, "genre"), chart_text(top)
                fig = px.line(
                    trend,
                    x="year",
                    y="share",
                    color="genre",
                    markers=True,
                    height=420,
                    color_discrete_sequence=SERIES,
                    category_orders={"genre": top},
                    hover_data={"ratings": ":,"},
                    title="Genres over the years: share of each year's ratings (the six most rated genres)",
                    labels={"share": "share of the year's ratings"},
                )
                fig.update_yaxes(tickformat=".0%")
                st.plotly_chart(fig, width="stretch")
                st.caption("A movie with several genres counts for each, so the shares add up to more than 100 %.")

            fig = px.line(
                s.ratings_per_year,
                x="year",
                y="ratings",
                markers=True,
                title="Ratings per year",
                height=420,
                hover_data={"mean_rating": ":.2f"},
                labels={"mean_rating": "mean rating"},
            )
            st.plotly_chart(fig, width="stretch")

    if tags_tab.open:
        with tags_tab:
            left, right = st.columns(2)
            curve, _ = concentration(s.ratings_per_movie)
            spread = s.concentration()
            gini, top10 = spread["gini"], spread["top_10_percent_share"]
            fig = px.area(
                curve,
                x="share_of_items",
                y="share_of_ratings",
                height=440,
                title="How concentrated the ratings are (Lorenz curve)",
                labels={
                    "share_of_items": "the most-rated share of rated movies",
                    "share_of_ratings": "share of all ratings they hold",
                },
            )
            fig.add_scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line=dict(dash="dot", color="grey"),
                name="every movie rated equally",
                hoverinfo="skip",
            )
            fig.update_xaxes(tickformat=".0%")
            fig.update_yaxes(tickformat=".0%")
            fig.update_layout(showlegend=False)
            fig.update_traces(
                hovertemplate="the top %{x:.0%} of movies hold %{y:.1%} of ratings<extra></extra>",
                selector=dict(type="scatter", fill="tozeroy"),
            )
            left.plotly_chart(fig, width="stretch")
            left.caption(
                f"The most-rated 10 % of rated movies hold {top10:.0%} of the ratings; Gini coefficient "
                f"{gini:.2f} (0: every movie rated as often, 1: one movie has them all). This long tail is "
                "why the recommendations page offers a minimum number of ratings."
            )
            height = max(450, 22 * len(s.top_tags) + 120)
            if len(s.top_tags):
                fig = px.bar(
                    chart_text(s.top_tags.sort_values("count"), "tag"),
                    x="count",
                    y="tag",
                    orientation="h",
                    title="Top tags",
                    height=height,
                )
                fig.update_yaxes(dtick=1)
                right.plotly_chart(fig, width="stretch")
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
