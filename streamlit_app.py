"""Entry point: page config, logging, navigation. Each page lives in pages/."""
import logging

import streamlit as st

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

st.set_page_config(page_title="Movie Recommender", page_icon="🎬", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/statistics.py", title="Dataset statistics", icon="📊"),
    st.Page("pages/recommendations.py", title="Recommendations", icon="⭐"),
    st.Page("pages/similar.py", title="Similar movies", icon="🎞️"),
    st.Page("pages/emotion.py", title="Mood from your face", icon="🙂"),
    st.Page("pages/model.py", title="Model", icon="⚙️"),
]
nav = st.navigation(PAGES)
# Which page this run draws, and whether the visitor has just come to it (a page switch, a link
# followed, a fresh session) rather than changed something on it: pages keep their choices
# across visits (persist_state="session"), and a link's address wins only when it is followed.
_previous = st.session_state.get("_page")
st.session_state["_page"] = nav.url_path
st.session_state["_page_entered"] = _previous != nav.url_path
try:  # a bad environment variable (e.g. MOOD_GENRES, EMOTION_RUNTIME) is a message, not a stack trace
    from engine.settings import get_settings
    get_settings()
except ValueError as exc:
    st.error(str(exc))
    st.stop()
nav.run()
