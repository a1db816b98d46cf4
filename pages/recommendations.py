"""Recommendations for a MovieLens user, or for you (new-user mode, ratings kept in SQLite).

The address names what is shown, so a reload or a bookmark brings it back: ``?user=575``,
``?profile=NAME`` (new-user mode) or ``?mode=movie-night``.
"""

import unicodedata

import pandas as pd
import streamlit as st

from engine.data.movielens import readable_title
from engine.people.rating_files import MAX_BYTES, export_ratings, read_ratings_file
from engine.people.user_ratings import RatingStore
from engine.recommender.serving import GROUP_STRATEGIES, PICK_MIN_PREDICTED
from engine.settings import get_settings
from pages._common import (
    MOVIE_COLUMNS,
    PROFILE,
    entered_page,
    for_display,
    friendly_errors,
    hidden_movies,
    listed,
    load_index,
    md_escape,
    person_label,
    rating_store,
    saved_profiles,
    through_navigation,
    typed_user,
)

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py

# Most telling first. The last five start hidden so that the list fits 1,280 px with the sidebar open
# (at 1,400 px they were cut off): a selected row shows them, and the table's column menu brings them back.
SHOWN = ["title", "year", "predicted_rating", "because", "genres", "n_ratings", "similar", "IMDb", "TMDB"]
IN_DETAIL = ["genres", "n_ratings", "similar", "IMDb", "TMDB"]
TABLE = {
    **MOVIE_COLUMNS,
    "title": st.column_config.TextColumn("Title", width=300, pinned=True),
    **{c: {**MOVIE_COLUMNS[c], "hidden": True} for c in IN_DETAIL},
}
MODES = ["A MovieLens user", "Me (new user)", "Movie night"]
NIGHT = "movie-night"  # ?mode=movie-night
PROFILE_MAX = 60  # characters of a profile name (typed, or from the address)
QUICK_USERS = (575, 232)
HISTORY = ["title", "year", "rating", "genres", "similar"]
ORDER_NOTES = {
    "picks": "Top picks: the movies most likely to be watched and enjoyed next. "
    "*Because you rated…* lists the rated movies that add most to each pick's score.",
    "rating": "Ordered by the highest predicted rating. *Because you rated…* lists the "
    "well-rated movies closest to each one in the model's taste space.",
}

st.title("⭐ Recommendations")
index = load_index()
if index is None:
    st.stop()


with st.sidebar:
    st.header("Filters")
    n = st.slider("How many", 1, 50, 10, key="rec_n", persist_state="session")
    min_ratings = st.slider(
        "Only movies with at least this many ratings",
        0,
        200,
        20,
        step=5,
        key="rec_min",
        help="Few ratings make a prediction unreliable.",
        persist_state="session",
    )
    genres = st.multiselect(
        "Genres (any of)", index.genres, key="rec_genres", persist_state="session", placeholder="All genres"
    )


def order_control() -> str:
    """The sidebar's *Order* (not drawn in Movie night, where it does not apply)."""
    with st.sidebar:
        if not index.has_picks:
            st.caption("This model has no top-picks ranking: retrain it on the home page to get one.")
            return "rating"
        return st.radio(
            "Order",
            ["picks", "rating"],
            key="rec_order",
            persist_state="session",
            format_func={"picks": "Top picks for you", "rating": "Highest predicted rating"}.get,
            help="Top picks: what you are most likely to watch and enjoy next (ranks "
            "held-out favourites far better), leaving out what the model expects you to "
            "rate below "
            f"{PICK_MIN_PREDICTED:g} stars. Highest predicted rating: the most "
            "stars the model expects, often little-known films.",
        )


def profile_from_link(text) -> tuple[str | None, str | None]:
    """A profile name from the address (``?profile=``): (name, None), or (None, what is wrong with it).

    The name is data: it only selects rows of the ratings database, never a file."""
    name = str(text or "").strip()
    if not name:
        return None, "it is empty"
    if len(name) > PROFILE_MAX:
        return None, f"it is longer than {PROFILE_MAX} characters"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return None, "it contains control or invisible characters"
    return name, None


def set_address(**params: str) -> None:
    """The address names what the page shows (one of user, profile, mode), so a reload brings it back."""
    for name in ("user", "profile", "mode"):
        if name not in params:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != params[name]:
            st.query_params[name] = params[name]


def movie_table(recs: pd.DataFrame, key: str) -> None:
    """A recommendation list in the columns that fit 1,280 px; a selected row shows the rest."""
    shown = for_display(recs)[SHOWN]
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height="content",
        column_config=TABLE,
        on_select="rerun",
        selection_mode="single-row",
        key=key,
    )
    rows = [r for r in (event.selection.rows if event else []) if r < len(shown)]
    if not rows:
        if len(shown):
            st.caption("Select a row for its genres and links (the table's column menu shows them too).")
        return
    movie = shown.iloc[rows[0]]
    with st.container(border=True):
        year = f" ({int(movie['year'])})" if pd.notna(movie["year"]) else ""
        genres_ = " · ".join(map(md_escape, movie["genres"])) or "no genre listed"
        st.markdown(f"**{md_escape(movie['title'])}**{year} · {genres_} · {int(movie['n_ratings']):,} ratings")
        if movie["because"]:
            st.caption("Because you rated " + "; ".join(md_escape(t) for t in movie["because"]))
        links = st.columns(3, width=420)
        links[0].page_link(
            "pages/similar.py",
            label="Similar movies",
            icon=":material/movie:",
            query_params={"movie": str(int(movie["movieId"]))},
        )
        for cell, site in zip(links[1:], ("IMDb", "TMDB")):
            if isinstance(movie[site], str):
                cell.link_button(site, movie[site], icon=":material/open_in_new:")


def held_back_note(recs: pd.DataFrame, who: str) -> None:
    """Says which movies top picks left out because the model expects ``who`` to dislike them."""
    held = recs.attrs.get("held_back") or []
    if held:
        names = "; ".join(f"{md_escape(readable_title(t))} ({p:.2f} ⭐)" for _, t, p in held[:3])
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        st.caption(
            f"{len(held)} {'movie' if len(held) == 1 else 'movies'} held back: the model expects {who} to "
            f"rate {'it' if len(held) == 1 else 'them'} below {PICK_MIN_PREDICTED:g} ⭐ ({names}{more}). "
            "*Highest predicted rating* (sidebar) orders by stars alone."
        )


POPULAR_TILES, POPULAR_COLUMNS = 9, 3
SHORT_LIST = 8  # ratings listed before "Show all"


def popular_to_rate(index, store: RatingStore, profile: str, rated: list[int]) -> list[int]:
    """The fastest start: the most-rated movies not yet rated, one click of stars each.

    A rated movie leaves the grid at once and the next most-rated one takes its place;
    *Show other movies* pages on (round the catalogue when it reaches the end). Returns the
    movies shown, which the recommendations below leave out (they are on screen already).
    """

    def other_movies() -> None:
        st.session_state.quick_offset = st.session_state.get("quick_offset", 0) + POPULAR_TILES

    st.markdown("**…or rate some of the most-watched movies**")
    tiles = index.popular_to_rate(rated, POPULAR_TILES, st.session_state.get("quick_offset", 0))

    def save(movie_id: int, title: str) -> None:
        stars = st.session_state.get(f"quick_{movie_id}")
        if stars is None:
            return
        with friendly_errors("Saving the rating"):
            store.set_rating(profile, movie_id, float(stars + 1))
            st.toast(f"Saved {stars + 1}★ for {md_escape(title)}")

    shown = for_display(tiles)
    for start in range(0, len(shown), POPULAR_COLUMNS):
        for cell, (_, movie) in zip(
            st.columns(POPULAR_COLUMNS), shown.iloc[start : start + POPULAR_COLUMNS].iterrows()
        ):
            movie_id = int(movie["movieId"])
            title = index.readable_titles[movie_id]
            with cell.container(border=True, height="stretch"):  # a row of cards, one height
                year = f"{int(movie['year'])} · " if pd.notna(movie["year"]) else ""
                st.markdown(f"**{md_escape(movie['title'])}**")
                st.caption(f"{year}{' · '.join(map(md_escape, movie['genres'][:3])) or 'no genre listed'}")
                st.feedback("stars", key=f"quick_{movie_id}", on_change=save, args=(movie_id, title))
    st.button(
        "Show other movies",
        key="quick_other",
        icon=":material/refresh:",
        on_click=other_movies,
        help=f"The next {POPULAR_TILES} most-watched movies you have not rated",
    )
    return [int(m) for m in tiles["movieId"]]


def rate_a_pick(store: RatingStore, profile: str, picks: list[int], hidden: list[int]) -> None:
    """Seen one of the recommendations already? Rate it here: it leaves the list, which learns from it.
    Not interested? Hide it from this profile's suggestions (listed below, and can be shown again)."""

    def save() -> None:
        movie, stars = st.session_state.get("seen_pick"), st.session_state.get("seen_stars")
        if movie is not None and stars is not None:
            with friendly_errors("Saving the rating"):
                store.set_rating(profile, int(movie), float(stars + 1))
                st.toast(f"Saved {stars + 1}★ for {md_escape(index.readable_titles[int(movie)])}")
            st.session_state.seen_pick = st.session_state.seen_stars = None

    def not_interested() -> None:
        movie = st.session_state.get("seen_pick")
        if movie is not None:
            with friendly_errors("Hiding the movie"):
                store.hide(profile, int(movie))
                st.toast(f"{md_escape(index.readable_titles[int(movie)])} will not be suggested again")
            st.session_state.seen_pick = None

    if picks:
        pick, stars, hide = st.columns([4, 1, 1], vertical_alignment="bottom")
        pick.selectbox(
            "Seen one of these already? Rate it, and the list moves on. Or say you are not interested",
            picks,
            index=None,
            format_func=lambda m: index.readable_titles[m],
            key="seen_pick",
            placeholder="Pick a movie from the list",
        )
        nothing = st.session_state.get("seen_pick") is None
        with stars:
            st.feedback("stars", key="seen_stars", on_change=save, disabled=nothing)
        hide.button(
            "Not interested",
            key="seen_hide",
            on_click=not_interested,
            disabled=nothing,
            icon=":material/visibility_off:",
            help="Leave this movie out of this profile's recommendations, quick start, movie nights and mood lists",
        )
    if hidden:
        with st.expander(f"Not interested ({len(hidden)})", icon=":material/visibility_off:"):
            for movie_id in hidden:
                row = st.columns([5, 1], vertical_alignment="center")
                row[0].text(index.readable_titles.get(movie_id, f"movie {movie_id}"))
                if row[1].button("Show again", key=f"unhide_{movie_id}"):
                    with friendly_errors("Showing the movie again"):
                        store.unhide(profile, movie_id)
                        st.rerun()


def import_export(index, store: RatingStore, profile: str, mine: list[tuple[int, float]]) -> None:
    """Bring ratings from a file (this app's export, MovieLens, IMDb, Letterboxd) or take them away."""
    owner, note = st.session_state.get("import_note", (None, None))
    slot = st.empty()  # emptied when another import starts: a failed one must not stand beside it
    if note and owner == profile:  # the last import's report stays until dismissed (or another import)
        text, close = slot.container().columns([12, 1], vertical_alignment="center")
        text.success(note)
        if close.button("", icon=":material/close:", key="import_note_close", help="Dismiss this report"):
            del st.session_state["import_note"]
            st.rerun()
    with st.expander("Import or export ratings", icon=":material/swap_vert:"):
        st.download_button(
            "Download my ratings (CSV)",
            export_ratings(mine, index.movies),
            file_name=f"{profile}-ratings.csv",
            mime="text/csv",
            disabled=not mine,
            icon=":material/download:",
            key="ratings_download",
            on_click="ignore",
        )
        round_ = st.session_state.get("import_round", 0)  # a new key empties the uploader after an import
        upload = st.file_uploader(
            f"Import a ratings file (CSV, up to {MAX_BYTES // 2**20} MB)",
            type=["csv"],
            key=f"ratings_upload_{round_}",
            max_upload_size=MAX_BYTES // 2**20,
            help="This app's export or any movieId,rating CSV (MovieLens), the "
            "ratings export of IMDb, or the ratings.csv of Letterboxd's data export.",
        )
        replace = st.checkbox("The file's rating replaces one I already gave", key="import_replace")
        if upload is not None and st.button("Import", type="primary", key="ratings_import"):
            st.session_state.pop("import_note", None)
            slot.empty()
            with friendly_errors(f"Importing {upload.name}"):
                read = read_ratings_file(upload.getvalue(), upload.name, index.movies)
                if not read.pairs:
                    st.warning(f"{md_escape(upload.name)}: {md_escape(read.summary())}. Nothing to import.")
                    return
                counts = store.import_ratings(profile, read.pairs, replace=replace)
                kept = f", {counts['kept']} already rated kept as they were" if counts["kept"] else ""
                st.session_state.import_note = (
                    profile,
                    (
                        f"{md_escape(upload.name)}: {md_escape(read.summary())}. Saved under “{md_escape(profile)}”: "
                        f"{counts['added']} added, {counts['replaced']} replaced{kept}."
                    ),
                )
                st.session_state.import_round = round_ + 1
                st.rerun()


def movie_night() -> None:
    """Several people at once: MovieLens users and profiles, one list nobody minds (or the best on average)."""
    profiles = {}
    with friendly_errors("Reading the saved profiles"):  # MovieLens users can still be picked
        profiles = saved_profiles()
    options, typed = listed(
        [*(PROFILE + p for p in profiles), *map(int, index.user_ids)], *st.session_state.get("group_members", ())
    )
    chosen = st.multiselect(
        "Who is watching? (two to six people)",
        options,
        key="group_members",
        max_selections=6,
        format_func=lambda c: person_label(c, profiles),
        persist_state="session",
        placeholder="Profiles from “Me (new user)” and MovieLens users" + (" (or type an id)" if typed else ""),
        accept_new_options=typed,
    )
    chosen = [c for c in (typed_user(c, index) for c in chosen) if c is not None]
    strategy = st.radio(
        "Pick the movies",
        list(GROUP_STRATEGIES),
        horizontal=True,
        key="group_strategy",
        persist_state="session",
        format_func={"misery": "nobody minds (the best lowest rating)", "average": "best on average"}.get,
        help="Nobody minds: the group score is the lowest predicted rating among you, so no "
        "one is stuck with a film they would dislike. Best on average: the mean, which "
        "one enthusiast can carry.",
    )
    if len(chosen) < 2:
        st.info("Add at least two people: profiles rated under *Me (new user)*, or MovieLens users.")
        return
    members = {}
    for c in chosen:
        if isinstance(c, str) and c.removeprefix(PROFILE) not in profiles:
            continue  # a profile emptied in another tab since it was picked
        label = c.removeprefix(PROFILE) if isinstance(c, str) else f"user {c}"
        label = f"{label} (profile)" if label in members else label
        members[label] = profiles[c.removeprefix(PROFILE)] if isinstance(c, str) else c
    with friendly_errors("Recommending for the group"):
        hidden = hidden_movies(*(c.removeprefix(PROFILE) for c in chosen if isinstance(c, str)))
        recs = index.recommend_group(
            members, n, min_ratings=min_ratings, genres=genres or None, strategy=strategy, hidden=hidden
        )
        st.subheader(f"Top {len(recs)} for " + ", ".join(md_escape(m) for m in members))
        st.caption(
            f"Ranked by {GROUP_STRATEGIES[strategy]} (each person's predicted rating, as for them "
            "alone); movies anyone rated or marked *Not interested* are left out."
        )
        if recs.empty:
            st.info("No movie passes these filters: lower the minimum ratings or add genres.")
        each = {f"for {m}": st.column_config.NumberColumn(f"For {m}", format="%.2f ⭐") for m in members}
        shown = for_display(recs)
        shown["because"] = [[f"{who}: {readable_title(title)}" for who, title in why] for why in recs["because_by"]]
        st.dataframe(
            shown[["title", "year", "group_score", *each, "because", "genres", "n_ratings", "similar", "IMDb", "TMDB"]],
            hide_index=True,
            width="stretch",
            height="content",
            column_config={
                **TABLE,
                **each,
                "group_score": st.column_config.NumberColumn("Group", format="%.2f ⭐"),
                "because": st.column_config.ListColumn(
                    "Because…", width="large", help="For each person, the movie they rated that is most like this one"
                ),
            },
        )


asked = st.query_params.get("user")  # a shared link: /recommendations?user=232
bad_profile = None
if entered_page():  # a link followed (or a reload) opens what its address names, whatever was shown before
    if asked:
        st.session_state.pop("rec_user", None)
        st.session_state.rec_mode = MODES[0]
    elif "profile" in st.query_params:
        st.session_state.rec_mode = MODES[1]
        name, problem = profile_from_link(st.query_params["profile"])
        if name is None:
            bad_profile = problem
        elif name != st.session_state.get("profile"):
            st.session_state.profile = name
            st.session_state.pop("quick_offset", None)
    elif st.query_params.get("mode") == NIGHT:
        st.session_state.rec_mode = MODES[2]
# No default= on the widgets set through the session state ("created with a default value but also
# had its value set via the Session State API"): their first value is set here instead.
st.session_state.setdefault("rec_mode", MODES[0])
st.session_state.setdefault("profile", "guest")
mode = st.segmented_control(
    "Recommend for",
    MODES,
    key="rec_mode",
    persist_state="session",
    help="Movie night: several people at once (profiles and MovieLens users).",
)

if mode == "Movie night":
    set_address(mode=NIGHT)
    movie_night()
elif mode != "Me (new user)":
    order = order_control()
    users = [int(u) for u in index.user_ids]
    if "rec_user" not in st.session_state:
        st.session_state.rec_user = 575 if 575 in users else users[0]
        if asked:
            if asked.strip().isdigit() and index.has_user(int(asked)):
                st.session_state.rec_user = int(asked)
            else:
                st.warning(
                    f"The link asks for user “{md_escape(asked)}”, whom this model does not know "
                    f"(ids {min(users)}–{max(users)}). Showing user {st.session_state.rec_user} instead."
                )
    quick = [u for u in QUICK_USERS if u in index._user_pos]
    for cell, quick_user in zip(st.columns(len(quick) + 6)[: len(quick)], quick):  # the active one stands out
        cell.button(
            f"User {quick_user}",
            key=f"rec_quick_{quick_user}",
            type="primary" if st.session_state.get("rec_user") == quick_user else "secondary",
            on_click=lambda u=quick_user: st.session_state.update(rec_user=u),
        )
    options, typed = listed(users, st.session_state.get("rec_user"))
    user = st.selectbox(
        "User (type to search" + (", or type any id)" if typed else ")"),
        options,
        key="rec_user",
        persist_state="session",
        accept_new_options=typed,
    )
    user = typed_user(user, index)
    if user is None:
        st.stop()
    set_address(user=str(user))  # the address bar now links to this user's list
    # One table per row: side by side, *Because you rated…* was cut off below ~1,600 px.
    with friendly_errors("Recommending"):
        recs = index.recommend(user, n, min_ratings=min_ratings, genres=genres or None, order=order)
        st.subheader(f"Top {len(recs)} for user {user}")
        st.caption(ORDER_NOTES[order])
        if recs.empty:
            st.info("No movie passes these filters: lower the minimum ratings or add genres.")
        movie_table(recs, "rec_table_user")
        held_back_note(recs, f"user {user}")
    with friendly_errors("Reading the history"):
        st.subheader(f"What user {user} rated highest")
        taste = index.user_profile(user)
        genres_liked = ", ".join(f"{md_escape(g)} ({c})" for g, c in taste["top_genres"]) or "—"
        outside = taste["not_in_model"]
        if taste["ratings"]:
            st.caption(
                f"{taste['ratings']:,} movies rated, {taste['mean_rating']:.2f} ⭐ on average; "
                f"{'liked most' if taste['liked'] else 'rated most'}: {genres_liked}."
                + (
                    f" {outside} more {'rating is' if outside == 1 else 'ratings are'} of movies the "
                    f"model has not learned ({taste['ratings'] + outside:,} in the data): none of "
                    "their ratings fell in its training split, so they are not listed or used."
                    if outside
                    else ""
                )
            )
        st.dataframe(
            for_display(index.user_history(user, 15))[HISTORY],
            hide_index=True,
            height="content",
            width="stretch",
            column_config=MOVIE_COLUMNS,
        )
else:
    order = order_control()
    if bad_profile:
        shown = "".join("\ufffd" if unicodedata.category(c)[0] == "C" else c for c in st.query_params["profile"])
        shown = shown if len(shown) <= PROFILE_MAX else shown[:PROFILE_MAX] + "…"
        st.warning(
            f"The link's profile name “{md_escape(shown)}” cannot be used: {bad_profile}. "
            f"Showing “{md_escape(st.session_state.profile)}” instead; type a name below."
        )
    profile = st.text_input(
        "Your profile name (ratings are saved under it; the address keeps it for a reload or a bookmark)",
        key="profile",
        persist_state="session",
        max_chars=PROFILE_MAX,
        on_change=lambda: st.session_state.pop("quick_offset", None),
    ).strip()  # from the top
    if not profile:
        st.warning("Type a profile name to keep your ratings.")
        st.stop()
    set_address(profile=profile)
    mine = None
    with friendly_errors("Reading your ratings"):  # e.g. RATINGS_DB is not a database: said, and stop
        store = rating_store(str(get_settings().ratings_db))
        # hidden: changed only by callbacks (before this run) or a button that reruns
        mine, hidden = store.ratings(profile), store.hidden(profile)
    if mine is None:
        st.stop()
    st.subheader("Rate movies you know")
    rate, yours = st.columns([3, 2], gap="large")
    with rate:
        query = st.text_input("Find a movie by title", key="rate_query", placeholder="e.g. Toy Story")
        hits = index.search_titles(query, limit=30)
        if hits.empty:
            st.info(f"No title contains “{md_escape(query)}”.")
        else:
            options = {
                int(m): f"{index.readable_titles[m]} ({r:,} ratings)"
                for m, r in zip(hits["movieId"], hits["n_ratings"])
            }
            pick = st.selectbox("Movie", list(options), format_func=options.get, key="rate_pick")
            stars = st.feedback("stars", key="rate_stars")

            def save_rating():
                # Runs before the rerun: the stars can be reset for the next movie.
                with friendly_errors("Saving the rating"):
                    store.set_rating(profile, int(pick), float(stars + 1))
                    st.toast(f"Saved {stars + 1}★ for {md_escape(options[pick])}")
                st.session_state.rate_stars = None

            st.button("Save rating", type="primary", disabled=stars is None, key="rate_save", on_click=save_rating)
        on_screen = popular_to_rate(index, store, profile, [m for m, _ in mine] + hidden)
    with yours:
        st.subheader(f"Your ratings ({len(mine)})")
        import_export(index, store, profile, mine)
        if not mine:
            st.caption("Nothing rated yet under this profile.")
        latest = mine[::-1]  # newest first; an imported file can bring hundreds
        if len(latest) > SHORT_LIST and not st.toggle(f"Show all {len(latest)}", key="ratings_all"):
            latest = latest[:SHORT_LIST]
        for movie_id, rating in latest:
            row = st.columns([4, 3, 1], vertical_alignment="center")
            row[0].text(index.readable_titles.get(movie_id, f"movie {movie_id}"))
            new = row[1].select_slider(
                "stars",
                [x / 2 for x in range(1, 11)],
                value=rating,
                key=f"edit_{movie_id}",
                label_visibility="collapsed",
            )
            if new != rating:
                with friendly_errors("Saving the rating"):
                    store.set_rating(profile, movie_id, new)
            if row[2].button("", icon=":material/close:", key=f"del_{movie_id}", help="Remove this rating"):
                with friendly_errors("Removing the rating"):
                    store.remove_rating(profile, movie_id)
                    st.rerun()
    st.subheader("Recommended for you")
    st.caption(ORDER_NOTES[order])
    if not mine:
        st.info("Rate a few movies (three or more works well) to get recommendations.")
    else:
        with friendly_errors("Recommending"):
            # The quick-start grid's movies are on screen already (to be rated if seen): the list
            # offers others rather than repeat them (it did, five or more of ten, for a new profile).
            recs = index.recommend_new_user(
                store.ratings(profile),
                n,
                min_ratings=min_ratings,
                genres=genres or None,
                order=order,
                hidden=hidden,
                skip=on_screen,
            )
            movie_table(recs, "rec_table_mine")
            held_back_note(recs, "you")
            st.caption(
                "The most-watched movies in the grid above are left out of this list: rate them "
                "there if you have seen them, or *Show other movies*."
            )
            rate_a_pick(store, profile, recs["movieId"].astype(int).tolist(), hidden)
