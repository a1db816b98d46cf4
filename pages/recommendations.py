"""Recommendations for a MovieLens user, or for you (new-user mode, ratings kept in SQLite)."""
import pandas as pd
import streamlit as st

from engine.movielens import readable_title
from engine.rating_files import MAX_BYTES, export_ratings, read_ratings_file
from engine.serving import GROUP_STRATEGIES
from engine.settings import get_settings
from engine.user_ratings import RatingStore
from pages._common import (MOVIE_COLUMNS, PROFILE, entered_page, for_display, friendly_errors, hidden_movies,
                           load_index, md_escape, person_label, rating_store, saved_profiles,
                           through_navigation)

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py

# Most telling first: where the table is narrower than its columns, what scrolls out of view is the least needed.
SHOWN = ["title", "year", "predicted_rating", "because", "genres", "n_ratings", "similar", "IMDb", "TMDB"]
HISTORY = ["title", "year", "rating", "genres", "similar"]
ORDER_NOTES = {"picks": "Top picks: the movies most likely to be watched and enjoyed next. "
                        "*Because you rated…* lists the rated movies that add most to each pick's score.",
               "rating": "Ordered by the highest predicted rating. *Because you rated…* lists the "
                         "well-rated movies closest to each one in the model's taste space."}

st.title("⭐ Recommendations")
index = load_index()
if index is None:
    st.stop()


with st.sidebar:
    st.header("Filters")
    n = st.slider("How many", 1, 50, 10, key="rec_n", persist_state="session")
    min_ratings = st.slider("Only movies with at least this many ratings", 0, 200, 20, step=5,
                            key="rec_min", help="Few ratings make a prediction unreliable.",
                            persist_state="session")
    genres = st.multiselect("Genres (any of)", index.genres, key="rec_genres", persist_state="session")
    if index.has_picks:
        order = st.radio("Order", ["picks", "rating"], key="rec_order", persist_state="session",
                         format_func={"picks": "Top picks for you", "rating": "Highest predicted rating"}.get,
                         help="Top picks: what you are most likely to watch and enjoy next (ranks "
                              "held-out favourites far better). Highest predicted rating: the most "
                              "stars the model expects, often little-known films.")
    else:
        order = "rating"
        st.caption("This model has no top-picks ranking: retrain it on the home page to get one.")

POPULAR_TILES, POPULAR_COLUMNS = 9, 3
SHORT_LIST = 8   # ratings listed before "Show all"


def popular_to_rate(index, store: RatingStore, profile: str, rated: list[int]) -> None:
    """The fastest start: the most-rated movies not yet rated, one click of stars each.

    A rated movie leaves the grid at once and the next most-rated one takes its place;
    *Show other movies* pages on (round the catalogue when it reaches the end).
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
        for cell, (_, movie) in zip(st.columns(POPULAR_COLUMNS), shown.iloc[start:start + POPULAR_COLUMNS].iterrows()):
            movie_id = int(movie["movieId"])
            title = index.readable_titles[movie_id]
            with cell.container(border=True, height="stretch"):  # a row of cards, one height
                year = f"{int(movie['year'])} · " if pd.notna(movie["year"]) else ""
                st.markdown(f"**{md_escape(movie['title'])}**")
                st.caption(f"{year}{' · '.join(map(md_escape, movie['genres'][:3])) or 'no genre listed'}")
                st.feedback("stars", key=f"quick_{movie_id}", on_change=save, args=(movie_id, title))
    st.button("Show other movies", key="quick_other", icon=":material/refresh:", on_click=other_movies,
              help=f"The next {POPULAR_TILES} most-watched movies you have not rated")


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
        pick.selectbox("Seen one of these already? Rate it, and the list moves on. Or say you are not "
                       "interested", picks, index=None, format_func=lambda m: index.readable_titles[m],
                       key="seen_pick", placeholder="Pick a movie from the list")
        nothing = st.session_state.get("seen_pick") is None
        with stars:
            st.feedback("stars", key="seen_stars", on_change=save, disabled=nothing)
        hide.button("Not interested", key="seen_hide", on_click=not_interested, disabled=nothing,
                    icon=":material/visibility_off:",
                    help="Leave this movie out of this profile's recommendations, quick start, movie nights "
                         "and mood lists")
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
    if note and owner == profile:   # the last import's report stays until dismissed (or another import)
        text, close = st.columns([12, 1], vertical_alignment="center")
        text.success(note)
        if close.button("", icon=":material/close:", key="import_note_close", help="Dismiss this report"):
            del st.session_state["import_note"]
            st.rerun()
    with st.expander("Import or export ratings", icon=":material/swap_vert:"):
        st.download_button("Download my ratings (CSV)", export_ratings(mine, index.movies),
                           file_name=f"{profile}-ratings.csv", mime="text/csv", disabled=not mine,
                           icon=":material/download:", key="ratings_download", on_click="ignore")
        round_ = st.session_state.get("import_round", 0)   # a new key empties the uploader after an import
        upload = st.file_uploader(f"Import a ratings file (CSV, up to {MAX_BYTES // 2**20} MB)", type=["csv"],
                                  key=f"ratings_upload_{round_}", max_upload_size=MAX_BYTES // 2**20,
                                  help="This app's export or any movieId,rating CSV (MovieLens), the "
                                       "ratings export of IMDb, or the ratings.csv of Letterboxd's data export.")
        replace = st.checkbox("The file's rating replaces one I already gave", key="import_replace")
        if upload is not None and st.button("Import", type="primary", key="ratings_import"):
            with friendly_errors(f"Importing {upload.name}"):
                read = read_ratings_file(upload.getvalue(), upload.name, index.movies)
                if not read.pairs:
                    st.warning(f"{md_escape(upload.name)}: {md_escape(read.summary())}. Nothing to import.")
                    return
                counts = store.import_ratings(profile, read.pairs, replace=replace)
                kept = f", {counts['kept']} already rated kept as they were" if counts["kept"] else ""
                st.session_state.import_note = profile, (
                    f"{md_escape(upload.name)}: {md_escape(read.summary())}. Saved under “{md_escape(profile)}”: "
                    f"{counts['added']} added, {counts['replaced']} replaced{kept}.")
                st.session_state.import_round = round_ + 1
                st.rerun()


def movie_night() -> None:
    """Several people at once: MovieLens users and profiles, one list nobody minds (or the best on average)."""
    profiles = {}
    with friendly_errors("Reading the saved profiles"):   # MovieLens users can still be picked
        profiles = saved_profiles()
    chosen = st.multiselect(
        "Who is watching? (two to six people)", [*(PROFILE + p for p in profiles), *map(int, index.user_ids)],
        key="group_members", max_selections=6, format_func=lambda c: person_label(c, profiles),
        persist_state="session",
        placeholder="Profiles from “Me (new user)” and MovieLens users")
    strategy = st.radio("Pick the movies", list(GROUP_STRATEGIES), horizontal=True, key="group_strategy",
                        persist_state="session",
                        format_func={"misery": "nobody minds (the best lowest rating)",
                                     "average": "best on average"}.get,
                        help="Nobody minds: the group score is the lowest predicted rating among you, so no "
                             "one is stuck with a film they would dislike. Best on average: the mean, which "
                             "one enthusiast can carry.")
    if len(chosen) < 2:
        st.info("Add at least two people: profiles rated under *Me (new user)*, or MovieLens users.")
        return
    members = {}
    for c in chosen:
        if isinstance(c, str) and c.removeprefix(PROFILE) not in profiles:
            continue   # a profile emptied in another tab since it was picked
        label = c.removeprefix(PROFILE) if isinstance(c, str) else f"user {c}"
        label = f"{label} (profile)" if label in members else label
        members[label] = profiles[c.removeprefix(PROFILE)] if isinstance(c, str) else c
    with friendly_errors("Recommending for the group"):
        hidden = hidden_movies(*(c.removeprefix(PROFILE) for c in chosen if isinstance(c, str)))
        recs = index.recommend_group(members, n, min_ratings=min_ratings, genres=genres or None,
                                     strategy=strategy, hidden=hidden)
        st.subheader(f"Top {len(recs)} for " + ", ".join(md_escape(m) for m in members))
        st.caption(f"Ranked by {GROUP_STRATEGIES[strategy]} (each person's predicted rating, as for them "
                   "alone); movies anyone rated or marked *Not interested* are left out. The sidebar's order "
                   "does not apply here.")
        if recs.empty:
            st.info("No movie passes these filters: lower the minimum ratings or add genres.")
        each = {f"for {m}": st.column_config.NumberColumn(f"For {m}", format="%.2f ⭐") for m in members}
        shown = for_display(recs)
        shown["because"] = [[f"{who}: {readable_title(title)}" for who, title in why] for why in recs["because_by"]]
        st.dataframe(shown[["title", "year", "group_score", *each, "because", "genres", "n_ratings", "similar",
                            "IMDb", "TMDB"]],
                     hide_index=True, width="stretch", height="content", column_config={
                         **MOVIE_COLUMNS, **each,
                         "group_score": st.column_config.NumberColumn("Group", format="%.2f ⭐"),
                         "because": st.column_config.ListColumn(
                             "Because…", width="large",
                             help="For each person, the movie they rated that is most like this one")})


asked = st.query_params.get("user")   # a shared link: /recommendations?user=232
if asked and entered_page():   # a link followed opens that user's list, whatever was shown before
    st.session_state.pop("rec_user", None)
    st.session_state.rec_mode = "A MovieLens user"
mode = st.segmented_control("Recommend for", ["A MovieLens user", "Me (new user)", "Movie night"],
                            default="A MovieLens user", key="rec_mode", persist_state="session",
                            help="Movie night: several people at once (profiles and MovieLens users).")

if mode == "Movie night":
    st.query_params.pop("user", None)
    movie_night()
elif mode != "Me (new user)":
    users = [int(u) for u in index.user_ids]
    if "rec_user" not in st.session_state:
        st.session_state.rec_user = 575 if 575 in users else users[0]
        if asked:
            if asked.strip().isdigit() and index.has_user(int(asked)):
                st.session_state.rec_user = int(asked)
            else:
                st.warning(f"The link asks for user “{md_escape(asked)}”, whom this model does not know "
                           f"(ids {min(users)}–{max(users)}). Showing user {st.session_state.rec_user} instead.")
    quick = st.columns([1, 1, 6])
    if quick[0].button("User 575"):
        st.session_state.rec_user = 575
    if quick[1].button("User 232"):
        st.session_state.rec_user = 232
    user = st.selectbox("User (type to search)", users, key="rec_user", persist_state="session")
    st.query_params["user"] = str(user)  # the address bar now links to this user's list
    # One table per row: side by side, *Because you rated…* was cut off below ~1,600 px.
    with friendly_errors("Recommending"):
        recs = index.recommend(user, n, min_ratings=min_ratings, genres=genres or None, order=order)
        st.subheader(f"Top {len(recs)} for user {user}")
        st.caption(ORDER_NOTES[order])
        if recs.empty:
            st.info("No movie passes these filters: lower the minimum ratings or add genres.")
        st.dataframe(for_display(recs)[SHOWN], hide_index=True, width="stretch", height="content",
                     column_config=MOVIE_COLUMNS)
    with friendly_errors("Reading the history"):
        st.subheader(f"What user {user} rated highest")
        taste = index.user_profile(user)
        genres_liked = ", ".join(f"{md_escape(g)} ({c})" for g, c in taste["top_genres"]) or "—"
        if taste["ratings"]:
            st.caption(f"{taste['ratings']:,} movies rated, {taste['mean_rating']:.2f} ⭐ on average; "
                       f"{'liked most' if taste['liked'] else 'rated most'}: {genres_liked}.")
        st.dataframe(for_display(index.user_history(user, 15))[HISTORY], hide_index=True, height="content",
                     width="stretch", column_config=MOVIE_COLUMNS)
else:
    st.query_params.pop("user", None)
    profile = st.text_input("Your profile name (ratings are saved under it)", "guest", key="profile",
                            persist_state="session",
                            on_change=lambda: st.session_state.pop("quick_offset", None)).strip()  # from the top
    if not profile:
        st.warning("Type a profile name to keep your ratings.")
        st.stop()
    mine = None
    with friendly_errors("Reading your ratings"):   # e.g. RATINGS_DB is not a database: said, and stop
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
            options = {int(m): f"{index.readable_titles[m]} ({r:,} ratings)"
                       for m, r in zip(hits["movieId"], hits["n_ratings"])}
            pick = st.selectbox("Movie", list(options), format_func=options.get, key="rate_pick")
            stars = st.feedback("stars", key="rate_stars")

            def save_rating():
                # Runs before the rerun: the stars can be reset for the next movie.
                with friendly_errors("Saving the rating"):
                    store.set_rating(profile, int(pick), float(stars + 1))
                    st.toast(f"Saved {stars + 1}★ for {md_escape(options[pick])}")
                st.session_state.rate_stars = None

            st.button("Save rating", type="primary", disabled=stars is None, key="rate_save",
                      on_click=save_rating)
        popular_to_rate(index, store, profile, [m for m, _ in mine] + hidden)
    with yours:
        st.subheader(f"Your ratings ({len(mine)})")
        import_export(index, store, profile, mine)
        if not mine:
            st.caption("Nothing rated yet under this profile.")
        latest = mine[::-1]   # newest first; an imported file can bring hundreds
        if len(latest) > SHORT_LIST and not st.toggle(f"Show all {len(latest)}", key="ratings_all"):
            latest = latest[:SHORT_LIST]
        for movie_id, rating in latest:
            row = st.columns([4, 3, 1], vertical_alignment="center")
            row[0].text(index.readable_titles.get(movie_id, f"movie {movie_id}"))
            new = row[1].select_slider("stars", [x / 2 for x in range(1, 11)], value=rating,
                                       key=f"edit_{movie_id}", label_visibility="collapsed")
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
            recs = index.recommend_new_user(store.ratings(profile), n, min_ratings=min_ratings,
                                            genres=genres or None, order=order, hidden=hidden)
            st.dataframe(for_display(recs)[SHOWN], hide_index=True, width="stretch", height="content",
                         column_config=MOVIE_COLUMNS)
            rate_a_pick(store, profile, recs["movieId"].astype(int).tolist(), hidden)
