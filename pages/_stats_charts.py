"""The statistics page's Plotly figures, one builder per tab: statistics in, figures out.

No Streamlit here: the page caches what these return (once per slice, shared by every session) and
draws it. Every change to a figure happens in its builder, never after: the page hands the same
Figure objects to every visitor, and ``st.plotly_chart`` only reads them.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
from plotly.graph_objects import Figure

from engine.data.stats import DatasetStats, Slice, concentration, log_binned
from pages._charts import SCALE, SERIES
from pages._common import chart_text

#: The statistics page's chart tabs, in order.
TABS = ("Ratings", "Genres and years", "Popularity and tags")


def ratings_charts(s: DatasetStats, whole: DatasetStats, part: Slice) -> dict[str, Figure]:
    """Ratings per user, ratings per movie (log bins), and the rating values (beside everyone's in a slice)."""
    figs = {}
    for per, dist, who, axis in (
        ("user", s.ratings_per_user, "users", "ratings by a user"),
        ("movie", s.ratings_per_movie, "movies", "ratings of a movie"),
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
        fig.update_traces(hovertemplate=f"%{{customdata[0]}}–%{{customdata[1]}} ratings: %{{y:,}} {who}<extra></extra>")
        figs[f"per_{per}"] = fig

    if part.everything:
        fig = px.bar(s.rating_values, x="rating", y="count", title="Rating values", height=380)
    else:  # shares side by side: does this slice rate higher or lower than everyone?
        both = pd.concat([s.rating_values.assign(of="this slice"), whole.rating_values.assign(of="all ratings")])
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
    figs["values"] = fig
    return figs


def genre_charts(s: DatasetStats, whole: DatasetStats, part: Slice) -> dict[str, Figure | None]:
    """Movies per genre and per release decade, genres' shares over the years, ratings per year.
    ``decades`` is None when no movie has a year; ``trend`` when the ratings span a single year."""
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
    figs: dict[str, Figure | None] = {"genres": fig, "decades": None, "trend": None}

    if len(s.release_decades):
        decades = s.release_decades.assign(label=s.release_decades["decade"].astype(str) + "s")
        figs["decades"] = px.bar(
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
        figs["trend"] = fig

    figs["per_year"] = px.line(
        s.ratings_per_year,
        x="year",
        y="ratings",
        markers=True,
        title="Ratings per year",
        height=420,
        hover_data={"mean_rating": ":.2f"},
        labels={"mean_rating": "mean rating"},
    )
    return figs


def tag_charts(s: DatasetStats, whole: DatasetStats, part: Slice) -> dict[str, Figure | None]:
    """The Lorenz curve of ratings over movies, and the top tags (None when the slice has no tags)."""
    curve, _ = concentration(s.ratings_per_movie)
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
    figs: dict[str, Figure | None] = {"lorenz": fig, "tags": None}
    if len(s.top_tags):
        fig = px.bar(
            chart_text(s.top_tags.sort_values("count"), "tag"),
            x="count",
            y="tag",
            orientation="h",
            title="Top tags",
            height=max(450, 22 * len(s.top_tags) + 120),
        )
        fig.update_yaxes(dtick=1)
        figs["tags"] = fig
    return figs


#: Each chart tab's builder.
BUILDERS = dict(zip(TABS, (ratings_charts, genre_charts, tag_charts)))
