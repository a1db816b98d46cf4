"""Entry point: page config, logging, the process's memory settings, navigation. Each page lives in pages/."""

import ctypes
import logging

import streamlit as st

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@st.cache_resource(show_spinner=False)
def keep_memory_flat() -> bool:
    """Once per server: live video decodes, analyses and encodes ~0.9 MB frames in one thread per
    stream, and glibc's malloc then raises its mmap threshold and serves those frames from per-thread
    arenas that keep growing (soak with two streams: RSS +9 to +14 % in 3 minutes; with these settings
    flat within 2 %). A fixed 128 KiB threshold hands each frame's memory back to the system; two
    arenas cap the sprawl. Returns whether the settings apply (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): its allocator has no such settings
        return False
    m_mmap_threshold, m_arena_max = -3, -8  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 128 * 1024)) and bool(libc.mallopt(m_arena_max, 2))


keep_memory_flat()

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

    settings = get_settings()
except ValueError as exc:
    st.error(str(exc))
    st.stop()


def spark_status(starter) -> None:
    """The sidebar's line on Spark (training, tuning and LSH need it): starting / ready / unavailable
    and why. Exact recommendations and similar movies never wait for it."""
    state = starter.state
    if state == "starting" and starter.started is None:
        st.caption("Spark: starts when a page needs it (training, tuning, Spark LSH).")
    elif state == "starting":
        st.caption(f"⏳ Spark: starting ({starter.seconds():.0f} s so far). Recommendations work meanwhile.")
    elif state == "ready":
        sc = starter.session.sparkContext
        st.caption(
            f"✅ Spark: ready ({sc.master}, {sc.defaultParallelism} cores; started in {starter.seconds():.0f} s)."
        )
    else:
        st.caption(
            "⚠️ Spark: unavailable. Training, tuning and Spark LSH need it; the rest works. Why: "
            + md_escape(starter.error)
        )


from pages._common import md_escape, preload, spark_starter  # noqa: E402  (after the settings check)

_starter = spark_starter()
if settings.spark_start == "background":
    _starter.start()  # once per server: the JVM starts while the visitor reads the page
preload()  # the serving index and the prepared release open meanwhile too (seconds each at 25 M ratings)
with st.sidebar:
    # While Spark starts, the line redraws itself every 2 s (a fragment, not the whole page).
    st.fragment(spark_status, run_every=2 if _starter.state == "starting" and _starter.started else None)(_starter)
nav.run()
