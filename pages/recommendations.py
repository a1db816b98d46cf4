"""Recommendations for a MovieLens user, or for you (new-user mode, ratings kept in SQLite)."""
import streamlit as st

from engine.settings import get_settings
from engine.user_ratings import RatingStore
from pages._common import MOVIE_COLUMNS, for_display, friendly_errors, load_index, md_escape, through_navigation

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py

SHOWN = ["title", "year", "genres", "predicted_rating", "because", "n_ratings", "similar", "IMDb", "TMDB"]
ORDER_NOTES = {"picks": "Top picks: the movies most likely to be watched and enjoyed next. "
                        "*Because you rated…* lists the rated movies that add most to each pick's score.",
               "rating": "Ordered by the highest predicted rating. *Because you rated…* lists the "
                         "well-rated movies closest to each one in the model's taste space."}

st.title("⭐ Recommendations")
index = load_index()
if index is None:
    st.stop()


@st.cache_resource
def rating_store(path: str) -> RatingStore:
    return RatingStore(path)


with st.sidebar:
    st.header("Filters")
    n = st.slider("How many", 1, 50, 10, key="rec_n")
    min_ratings = st.slider("Only movies with at least this many ratings", 0, 200, 20, step=5,
                            key="rec_min", help="Few ratings make a prediction unreliable.")
    genres = st.multiselect("Genres (any of)", index.genres, key="rec_genres")
    if index.has_picks:
        order = st.radio("Order", ["picks", "rating"], key="rec_order",
                         format_func={"picks": "Top picks for you", "rating": "Highest predicted rating"}.get,
                         help="Top picks: what you are most likely to watch and enjoy next (ranks "
                              "held-out favourites far better). Highest predicted rating: the most "
                              "stars the model expects, often little-known films.")
    else:
        order = "rating"
        st.caption("This model has no top-picks ranking: retrain it on the home page to get one.")

mode = st.segmented_control("Recommend for", ["A MovieLens user", "Me (new user)"],
                            default="A MovieLens user", key="rec_mode")

if mode != "Me (new user)":
    users = [int(u) for u in index.user_ids]
    if "rec_user" not in st.session_state:
        st.session_state.rec_user = 575 if 575 in users else users[0]
        if asked := st.query_params.get("user"):  # a shared link: /recommendations?user=232
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
    user = st.selectbox("User (type to search)", users, key="rec_user")
    st.query_params["user"] = str(user)  # the address bar now links to this user's list
    left, right = st.columns([3, 2])
    with left, friendly_errors("Recommending"):
        recs = index.recommend(user, n, min_ratings=min_ratings, genres=genres or None, order=order)
        st.subheader(f"Top {len(recs)} for user {user}")
        st.caption(ORDER_NOTES[order])
        if recs.empty:
            st.info("No movie passes these filters: lower the minimum ratings or add genres.")
        st.dataframe(for_display(recs)[SHOWN], hide_index=True, width="stretch",
                     column_config=MOVIE_COLUMNS)
    with right, friendly_errors("Reading the history"):
        st.subheader("Their top-rated movies")
        taste = index.user_profile(user)
        genres_liked = ", ".join(f"{g} ({c})" for g, c in taste["top_genres"]) or "—"
        if taste["ratings"]:
            st.caption(f"{taste['ratings']:,} movies rated, {taste['mean_rating']:.2f} ⭐ on average; "
                       f"{'liked most' if taste['liked'] else 'rated most'}: {genres_liked}.")
        st.dataframe(for_display(index.user_history(user, 15)[["title", "year", "rating"]]), hide_index=True,
                     width="stretch", column_config=MOVIE_COLUMNS)
else:
    st.query_params.pop("user", None)
    store = rating_store(str(get_settings().ratings_db))
    profile = st.text_input("Your profile name (ratings are saved under it)", "guest", key="profile").strip()
    if not profile:
        st.warning("Type a profile name to keep your ratings.")
        st.stop()
    st.subheader("Rate movies you know")
    query = st.text_input("Find a movie by title", key="rate_query", placeholder="e.g. Toy Story")
    hits = index.search_titles(query, limit=30)
    if hits.empty:
        st.info(f"No title contains “{query}”.")
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

    mine = store.ratings(profile)
    left, right = st.columns([2, 3])
    with left:
        st.subheader(f"Your ratings ({len(mine)})")
        for movie_id, rating in mine:
            row = st.columns([5, 2, 1])
            row[0].text(index.readable_titles.get(movie_id, f"movie {movie_id}"))
            new = row[1].select_slider("stars", [x / 2 for x in range(1, 11)], value=rating,
                                       key=f"edit_{movie_id}", label_visibility="collapsed")
            if new != rating:
                store.set_rating(profile, movie_id, new)
            if row[2].button("✕", key=f"del_{movie_id}", help="Remove this rating"):
                store.remove_rating(profile, movie_id)
                st.rerun()
    with right:
        st.subheader("Recommended for you")
        st.caption(ORDER_NOTES[order])
        if not mine:
            st.info("Rate a few movies (three or more works well) to get recommendations.")
        else:
            with friendly_errors("Recommending"):
                recs = index.recommend_new_user(store.ratings(profile), n, min_ratings=min_ratings,
                                                genres=genres or None, order=order)
                st.dataframe(for_display(recs)[SHOWN], hide_index=True, width="stretch",
                             column_config=MOVIE_COLUMNS)
