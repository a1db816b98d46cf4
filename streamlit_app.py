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
st.navigation(PAGES).run()
