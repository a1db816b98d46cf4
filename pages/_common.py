"""App-layer helpers shared by the pages: cached loaders and error display.

The caching decorators live here, not in ``engine`` (which imports no Streamlit):
``cache_resource`` for the Spark session and loaded models, ``cache_data`` for tables.
"""

from __future__ import annotations

import html
import logging
import re
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from engine.data.movielens import NO_GENRES, DataError, load_movielens, readable_title
from engine.data.prepare import parquet_release
from engine.data.stats_columnar import ColumnarRelease
from engine.jobs import AdminGate, JobBusy, JobSlot
from engine.people.user_ratings import RatingStore
from engine.preload import BackgroundLoads
from engine.recommender.model_store import ModelError, NoModelYet, current_model_dir, read_json
from engine.recommender.serving import RatingInputError, RecommenderIndex, UnknownIdError
from engine.settings import get_settings
from engine.spark import SparkUnavailable

log = logging.getLogger("app")

#: Engine errors a user can act on: shown as a message, never as a traceback.
USER_ERRORS = (
    DataError,
    ModelError,
    UnknownIdError,
    RatingInputError,
    SparkUnavailable,
    JobBusy,
    ValueError,
    FileNotFoundError,
)


def through_navigation() -> None:
    """Call first in every page: a page always runs inside the entry script's ``st.navigation``.

    Streamlit treats an app with a ``pages/`` folder as a legacy multipage app until
    some script run calls ``st.navigation``. So on a fresh server a deep link (a
    bookmarked ``/emotion``) ran this file alone: no page config, no settings check,
    and a sidebar of raw file names ("streamlit app", "common"), for every visitor
    until someone opened the home page. Here such a run switches the legacy mode off
    (as ``st.navigation`` itself does), runs ``streamlit_app.py`` instead, which opens
    the page the link asked for, and stops. Same run: a click that started it is kept.
    """
    import runpy

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if not getattr(PagesManager, "uses_pages_directory", False):  # gone in a later Streamlit: no-op
        return
    PagesManager.uses_pages_directory = False
    runpy.run_path(str(get_script_run_ctx().pages_manager.main_script_path), run_name="__main__")
    st.stop()


def entered_page() -> bool:
    """True on the first run of a page after the visitor came to it (from another page, a link
    or a new session); False on the reruns their clicks on it cause.

    Pages keep their choices when the visitor leaves and comes back (``persist_state="session"``
    on their widgets); a shared link or a *Try* link still opens what its address names, because
    a page reads its address on entry. Set by ``streamlit_app.py`` on every run.
    """
    return st.session_state.get("_page_entered", True)


def progress_bar(text: str = "Starting…"):
    """An ``st.progress`` bar and a ``progress(fraction, message)`` callback for engine calls.

    Tuning and training fit models in worker threads; the callback attaches this
    script run's context to whichever thread calls it, so the bar can be updated there.
    """
    import threading

    from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

    bar = st.progress(0.0, text=text)
    ctx = get_script_run_ctx()

    def report(fraction: float, message: str) -> None:
        add_script_run_ctx(threading.current_thread(), ctx)
        bar.progress(min(1.0, max(0.0, fraction)), text=message)

    return report


@contextmanager
def friendly_errors(what: str):
    """Show engine errors as ``st.error`` with the engine's own (specific) message.

    Both are shown as text (``md_escape``): ``what`` may name an uploaded file and the message may
    quote its cells."""
    try:
        yield
    except USER_ERRORS as exc:
        log.warning("%s failed: %s", what, exc)
        st.error(f"{md_escape(what)} failed: {md_escape(exc)}")
    except Exception as exc:  # anything else: logged with traceback, shown briefly
        log.exception("%s failed", what)
        st.error(
            f"{md_escape(what)} failed unexpectedly ({type(exc).__name__}: {md_escape(exc)}). "
            "The details are in the server log."
        )


def model_dir() -> Path | None:
    """The current model's folder, or None (after telling the user what to do: train a first
    model, or, when CURRENT is broken, pick a saved one on the Model page)."""
    try:
        return current_model_dir(get_settings().model_dir)
    except NoModelYet as exc:
        st.warning(str(exc))
        st.page_link("pages/home.py", label="Train the default model on the home page", icon="🏠")
    except ModelError as exc:
        log.warning("current model: %s", exc)
        st.warning(str(exc))
        st.page_link("pages/model.py", label="Pick a saved model (Model page, Saved models)", icon="⚙️")
    return None


def _stamp(folder: Path) -> float:
    return (folder / "params.json").stat().st_mtime


@st.cache_resource
def index_loads() -> BackgroundLoads[RecommenderIndex]:
    """The server's index loads (one per model version, the newest 3 kept), on background threads."""
    return BackgroundLoads(RecommenderIndex.load, keep=3, name="index-load")


def _load_index(folder: str, stamp: float) -> RecommenderIndex:
    loads = index_loads()
    if loads.ready(folder, stamp):
        return loads.get(folder, stamp)
    with st.spinner("Loading the recommender…", show_time=True):  # what is left of a load started earlier
        return loads.get(folder, stamp)


def preload() -> None:
    """Start opening what the pages read, unless it is opening or open (``streamlit_app.py`` calls
    this at every page view, as it starts Spark): the current model's serving index, the
    release's prepared Parquet and (unless ``EMOTION_LOAD=on-demand``) the emotion networks. The
    first page that needs one waits less, often not at all. Quiet: the page that needs it says
    what is wrong."""
    settings = get_settings()
    try:
        folder = current_model_dir(settings.model_dir)
        index_loads().start(str(folder), _stamp(folder))
    except (NoModelYet, ModelError, OSError, ValueError) as exc:
        log.debug("no index to preload: %s", exc)
    try:
        prepared = parquet_release(settings)
        if prepared is not None:
            columnar_loads().start(str(prepared), _manifest_stamp(prepared))
    except (OSError, ValueError) as exc:
        log.debug("no prepared release to preload: %s", exc)
    if settings.emotion_load == "background":
        recognizer_loads().start(*_recognizer_key(settings))


def load_index() -> RecommenderIndex | None:
    """The serving index of the current model (cached per model folder), or None."""
    folder = model_dir()
    if folder is None:
        return None
    try:
        return _load_index(str(folder), _stamp(folder))
    except (ModelError, OSError) as exc:  # OSError: the folder went away meanwhile
        log.warning("loading %s: %s", folder, exc)
        st.error(str(exc))
        st.page_link("pages/model.py", label="Pick another saved model (Model page, Saved models)", icon="⚙️")
        return None


@st.cache_data(show_spinner=False)
def model_metrics(folder: str, stamp: float) -> dict:
    return read_json(folder, "metrics.json")


def _recognizer_key(settings) -> tuple[str, float]:
    from engine.emotion.runs import MODEL_FILE

    path = settings.emotion_model_dir / MODEL_FILE
    return str(settings.emotion_model_dir), path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource
def recognizer_loads() -> BackgroundLoads:
    """The server's emotion networks (the newest version kept), loaded on a background thread."""
    from engine.emotion.detector import EmotionRecognizer

    return BackgroundLoads(EmotionRecognizer.load, keep=1, name="emotion-load")


def load_recognizer():
    """The emotion recognizer (:class:`engine.emotion.detector.EmotionRecognizer`), waiting for what
    is left of its load; raises ``FileNotFoundError``/``RuntimeError`` for a missing or broken model."""
    loads, key = recognizer_loads(), _recognizer_key(get_settings())
    if loads.ready(*key):
        return loads.get(*key)
    with st.spinner(
        "Loading the emotion model (on a machine's first start it is also converted to LiteRT for fast "
        "inference; later starts read that conversion back)…",
        show_time=True,
    ):
        return loads.get(*key)


def _manifest_stamp(folder: str | Path) -> float:
    return (Path(folder) / "manifest.json").stat().st_mtime  # written last by prepare-data


@st.cache_resource
def columnar_loads() -> BackgroundLoads[ColumnarRelease]:
    """The server's opened prepared releases (the newest 2 kept), opened on background threads."""
    return BackgroundLoads(_open_release, keep=2, name="release-open")


def _open_release(folder: str) -> ColumnarRelease:
    release = ColumnarRelease(folder)
    release.warm()  # the whole release's figures and the arrays of a first slice by genre
    return release


def columnar_for(folder: str) -> ColumnarRelease:
    """DuckDB over the release's prepared Parquet (statistics, the About panel): shared by the
    sessions (each query has its own cursor); waits for what is left of an open started by
    :func:`preload` (the caller's spinner says so)."""
    return columnar_loads().get(str(folder), _manifest_stamp(folder))


@st.cache_data(show_spinner="Reading MovieLens…")
def load_data(location: str):
    return load_movielens(location)


@st.cache_resource
def rating_store(path: str) -> RatingStore:
    """The SQLite store of the ratings people enter, shared by the sessions: it opens one connection
    per thread (a session's script run) and makes each write one short transaction.

    Raises :class:`~engine.people.user_ratings.RatingStoreError` (a ``ValueError``, so ``friendly_errors``
    shows it) when the file is locked, not a database or unwritable; that is not cached, so the
    next run tries again.
    """
    return RatingStore(path)


def saved_profiles() -> dict[str, list[tuple[int, float]]]:
    """The profiles of new-user mode that have ratings, with their (movieId, rating) pairs."""
    store = rating_store(str(get_settings().ratings_db))
    return {name: pairs for name in store.profiles() if (pairs := store.ratings(name))}


def hidden_movies(*profiles: str) -> list[int]:
    """The movies any of these profiles marked "Not interested" (left out of their lists)."""
    if not profiles:  # MovieLens users only: the store is not needed
        return []
    store = rating_store(str(get_settings().ratings_db))
    return sorted({m for name in profiles for m in store.hidden(name)})


PROFILE = "profile:"  # a person picker's option for a profile; MovieLens users are their int ids


#: A picker lists at most this many choices. Past that (162 k users or 59 k movies at 25 M ratings: seconds
#: to send and draw at every rerun) it lists the first ones and takes any other typed in, checked.
LISTED = 3_000


def listed(choices: list, *current) -> tuple[list, bool]:
    """(options, whether typed values are taken) of a picker over ``choices``: every choice when there
    are few; else the first :data:`LISTED` and ``current`` (what is chosen now, so that it stays shown)."""
    if len(choices) <= LISTED:
        return choices, False
    head = choices[:LISTED]
    shown, known = set(head), set(choices)
    return head + [c for c in current if c in known and c not in shown], True


def typed_user(value, index: RecommenderIndex):
    """A picker's value as a user: options come as they are; a typed id (text) as that user's int,
    or None (after a warning naming it) when this model does not know it."""
    if not isinstance(value, str) or value.startswith(PROFILE) or value == "Anyone":
        return value
    text = value.strip()
    if text.isdigit() and index.has_user(int(text)):
        return int(text)
    st.warning(
        f"“{md_escape(value)}” is not a MovieLens user of this model (ids {int(index.user_ids[0])}–"
        f"{int(index.user_ids[-1])}): type one of those ids."
    )
    return None


def typed_movie(value, index: RecommenderIndex):
    """A picker's value as a movie id: listed ones as they are; a typed id or title through
    ``find_movie``, or None (after a warning saying why) when it names no single movie."""
    if not isinstance(value, str):
        return value
    try:
        return index.find_movie(value)
    except UnknownIdError as exc:
        st.warning(f"“{md_escape(value)}”: {md_escape(exc)}")
        return None


def person_label(choice, profiles: dict) -> str:
    """How a person picker shows an option: "You: sam (12 ratings)" or "MovieLens user 575"."""
    if isinstance(choice, str) and choice.startswith(PROFILE):
        name = choice.removeprefix(PROFILE)
        return f"You: {name} ({len(profiles.get(name, ()))} ratings)"
    return choice if isinstance(choice, str) else f"MovieLens user {choice}"


@st.cache_resource
def job_slot() -> JobSlot:
    """The server's one slot for Spark training and tuning jobs (shared by every session)."""
    return JobSlot()


@st.cache_resource
def _admin_gate(password: str) -> AdminGate:
    return AdminGate(password)


def admin_unlocked(what: str) -> bool:
    """True when this session may ``what`` (train, tune, switch or delete models).

    Always true without ``ADMIN_PASSWORD`` (local use). With it, draws a password form once per
    session and says why; wrong guesses are slowed down server-wide (see ``AdminGate``).
    """
    gate = _admin_gate(get_settings().admin_password)
    if not gate.required or st.session_state.get("_admin_ok"):
        return True
    st.info(f"This server is shared: to {what}, enter the admin password (`ADMIN_PASSWORD`).")
    with st.form(f"admin_{what}", clear_on_submit=True):
        guess = st.text_input("Admin password", type="password", key=f"admin_pw_{what}")
        if st.form_submit_button("Unlock"):
            try:
                ok = gate.check(guess)
            except PermissionError as exc:
                st.error(str(exc))
                return False
            if ok:
                st.session_state._admin_ok = True
                st.rerun()
            st.error("Wrong password.")
    return False


def running_job_note() -> bool:
    """Shows the server's running training/tuning job, if any; True when one runs."""
    state = job_slot().state()
    if state is not None:
        st.info(state.describe())
    return state is not None


@st.cache_resource
def spark_starter():
    """The server's one Spark session, started in a background thread (``streamlit_app.py`` starts
    it at the first page view unless ``SPARK_START=on-demand``): no page waits for the JVM unless
    it needs Spark before the start is over."""
    from engine.spark import SparkStarter

    return SparkStarter(get_settings())


def spark_session():
    """The Spark session; while it is still starting, waits under a spinner that says so.
    Raises ``SparkUnavailable`` (shown by ``friendly_errors``) when Spark cannot start here."""
    starter = spark_starter().start(retry=True)
    if starter.state == "starting":
        with st.spinner(
            f"Waiting for Spark to finish starting (started {starter.seconds():.0f} s ago; it starts once per server)…",
            show_time=True,
        ):
            return starter.wait()
    return starter.wait()


def spark_release():
    """The configured release as Spark reads it, for training and tuning: a local release is
    converted to Parquet on its first use (then read at once), a URI is read where it lies."""
    from engine.data.spark_release import open_release

    return open_release(spark_session(), get_settings())


# What md_escape escapes: anything that opens inline markdown (code, emphasis, links and images,
# HTML and <autolinks>, math, strikethrough, tables, entities) and, at a line's start, a block
# (heading, quote, list, rule); an underscore inside a word opens nothing and is kept.
_ESCAPED = re.compile(r"[\\`*\[\]<$~|]|(?<![^\W_])_|_(?![^\W_])|&(?=[#A-Za-z])|^[ \t]*[#>+\-=]", re.M)
_NUMBERED = re.compile(r"^([ \t]*\d+)([.)])", re.M)  # "1." or "1)" opening a numbered list
# Links the markdown makes of plain text after unescaping it (http://, www., e-mail) and Streamlit's
# :icon: and :directive[...] shortcodes: a word joiner (U+2060, invisible) after "://"'s colon, "www",
# "@" or any colon before a non-space stops them; backslashes cannot.
_JOINED = re.compile(r"(?i)(:(?=\S)|www(?=\.)|@(?=\w))")
WORD_JOINER = "\u2060"


def md_escape(text) -> str:
    """Any string a user or a dataset controls (a link's value, a file's name or cells, a profile name,
    a title, a tag) as literal text in markdown: no link, image, HTML or formatting can come of it.

    Every element that takes text renders markdown (st.markdown/error/warning/info/caption/toast,
    labels), and its GFM links bare URLs, so every such string goes through here."""
    text = _JOINED.sub(lambda m: m.group(1) + WORD_JOINER, str(text))
    text = _ESCAPED.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], text)
    return _NUMBERED.sub(r"\1\\\2", text)


def chart_text(data, column: str | None = None):
    """Dataset strings (tags, genres) as Plotly draws them literally: Plotly reads ``<a href>``, ``<b>``
    and entities in labels and legends, so they are HTML-escaped. ``data``: a list, or a frame whose
    ``column`` is escaped (a copy)."""
    if column is None:
        return [html.escape(str(v), quote=False) for v in data]
    return data.assign(**{column: chart_text(data[column])})


def imdb_url(imdb_id) -> str | None:
    return f"https://www.imdb.com/title/tt{imdb_id}/" if imdb_id not in (None, "") and str(imdb_id) != "nan" else None


def tmdb_url(tmdb_id) -> str | None:
    try:
        return f"https://www.themoviedb.org/movie/{int(tmdb_id)}" if tmdb_id is not None else None
    except (TypeError, ValueError):
        return None


def for_display(df):
    """A movie table as people read it: titles with their article in front ("The Matrix"; the
    year dropped where a Year column shows it), genres and *Because you rated…* as chips, and
    links to the movie's similar-movies page and to IMDb/TMDB (links.csv). The engine's frame is
    not changed."""
    out = df.copy()
    if "title" in out:
        with_year = "year" not in out
        out["title"] = out["title"].map(lambda t: readable_title(t, with_year=with_year))
    if "genres" in out:
        out["genres"] = out["genres"].map(lambda g: [] if g == NO_GENRES else str(g).split("|"))
    if "because" in out:
        out["because"] = out["because"].map(lambda titles: [readable_title(t) for t in titles])
    if "movieId" in out:  # relative, so it works under a server base path too; opens a new tab
        out["similar"] = "similar?movie=" + out["movieId"].astype(int).astype(str)
    if "imdbId" in out:
        out["IMDb"] = out["imdbId"].map(imdb_url)
    if "tmdbId" in out:
        out["TMDB"] = out["tmdbId"].map(tmdb_url)
    return out


MOVIE_COLUMNS = {
    "title": st.column_config.TextColumn("Title", width=240, pinned=True),  # room for most titles; stays
    # in view while a narrow screen scrolls the other columns sideways
    "genres": st.column_config.ListColumn("Genres"),
    "rating": st.column_config.NumberColumn("Rating", format="%.1f ⭐"),
    "similar": st.column_config.LinkColumn(
        "More like it", display_text="Similar →", help="Opens the similar-movies page for this movie"
    ),
    "IMDb": st.column_config.LinkColumn("IMDb", display_text="IMDb"),
    "TMDB": st.column_config.LinkColumn("TMDB", display_text="TMDB"),
    "predicted_rating": st.column_config.NumberColumn("Predicted", format="%.2f ⭐"),
    "because": st.column_config.ListColumn("Because you rated…", width="large"),
    "year": st.column_config.NumberColumn("Year", format="%d"),
    "n_ratings": st.column_config.NumberColumn("Ratings"),
    "score": st.column_config.NumberColumn("Similarity", format="%.3f"),
}
