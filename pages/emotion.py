"""Mood from your face: live webcam (WebRTC), a photo, an upload, or chosen by hand."""

import logging
import time

import av
import cv2
import pandas as pd
import plotly.express as px
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from engine.emotion import EMOTIONS
from engine.emotion.detector import draw_faces
from engine.emotion.images import EmotionInputError, decode_image
from engine.emotion.live import FrameProcessor
from engine.emotion.report import ReportError, load_report
from engine.emotion.stale_frames import install as drop_stale_frames
from engine.recommender.mood import mood_recommendations
from engine.settings import get_settings
from pages._charts import SERIES
from pages._common import (
    MOVIE_COLUMNS,
    PROFILE,
    for_display,
    friendly_errors,
    hidden_movies,
    listed,
    load_index,
    load_recognizer,
    person_label,
    saved_profiles,
    through_navigation,
    typed_user,
)
from pages._webrtc_theme import LABELS, style_webrtc_buttons

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py
drop_stale_frames()  # a server that falls behind shows the newest frame instead of queueing them all

EMOJI = {"angry": "😠", "disgust": "🤢", "fear": "😨", "happy": "😄", "sad": "😢", "surprise": "😮", "neutral": "😐"}

st.title("🙂 Mood from your face")
st.caption("Your face is analysed in memory, frame by frame; no image is stored or logged.")


index = load_index()
try:
    model = load_recognizer()  # loading since the first page view (EMOTION_LOAD=background)
except (FileNotFoundError, RuntimeError) as exc:
    st.error(str(exc))
    st.stop()

settings = get_settings()
with st.sidebar:
    st.subheader("Movies for your mood")
    st.caption("These settings shape the list shown under any mood read on this page (live, photo, upload or by hand).")
    n = st.slider(
        "Movies", 3, 20, 8, key="mood_n", persist_state="session", help="How many movies the mood's list shows."
    )
    min_ratings = st.slider(
        "Minimum ratings",
        1,
        200,
        20,
        key="mood_min",
        persist_state="session",
        help="Only movies rated at least this many times in the dataset: fewer "
        "ratings let in obscure movies whose average rests on a handful of people.",
    )
    user, mine, profiles, hidden = None, None, {}, []
    if index is not None:
        with friendly_errors("Reading the saved profiles"):
            profiles = saved_profiles()
        options, typed = listed(
            ["Anyone", *(PROFILE + p for p in profiles), *map(int, index.user_ids)], st.session_state.get("mood_user")
        )
        choice = st.selectbox(
            "Rank for (optional)",
            options,
            key="mood_user",
            format_func=lambda c: person_label(c, profiles),
            persist_state="session",
            accept_new_options=typed,
            help="Anyone: the best-rated movies of the mood's genres. A profile of the Recommendations "
            "page (new-user mode) or a MovieLens user: their own top picks in those genres.",
        )
        choice = typed_user(choice, index) or "Anyone"
        if isinstance(choice, str) and choice.startswith(PROFILE):
            mine = profiles.get(choice.removeprefix(PROFILE))  # None (anyone) if emptied meanwhile
            hidden = hidden_movies(choice.removeprefix(PROFILE)) if mine else []
        elif choice != "Anyone":
            user = int(choice)
    st.caption("Emotion → genres: " + "; ".join(f"{k} → {', '.join(v)}" for k, v in settings.mood_genres.items()))


def show_probabilities(target, probs: dict, title: str, key: str | None = None) -> None:
    """The bar chart of ``probs``. The live loop redraws it many times in one script run: each
    draw needs its own ``key``, or the second identical chart (a still face) is a duplicate element."""
    df = pd.DataFrame({"emotion": list(probs), "probability": list(probs.values())})
    fig = px.bar(df, x="probability", y="emotion", orientation="h", range_x=[0, 1], title=title)
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=10))
    target.plotly_chart(fig, width="stretch", key=key)


PHOTO_MB = 10  # the photo uploader's own limit, below the server's (.streamlit/config.toml)

MOOD_COLUMNS = {
    **MOVIE_COLUMNS,
    "score": st.column_config.NumberColumn(
        "Score",
        format="%.2f ⭐",
        help="Mean rating pulled toward the overall mean when a movie has few ratings "
        "(a Bayesian average), so a handful of 5-star votes does not top the list.",
    ),
}


def show_movies(target, emotion: str, key: str | None = None) -> None:
    """The movies for ``emotion``; ``key``: as for :func:`show_probabilities` (the live loop shows a
    mood's list again whenever the mood comes back)."""
    if index is None:
        target.info("Train a recommender (home page) to see movies for your mood.")
        return
    with target.container():
        with friendly_errors("Finding movies for your mood"):
            t0 = time.perf_counter()
            movies = mood_recommendations(
                emotion, index.movies, n, min_ratings, index=index, user_id=user, ratings=mine, hidden=hidden
            )
            ms = (time.perf_counter() - t0) * 1000
            st.subheader(f"{EMOJI.get(emotion, '')} Feeling {emotion}? Try these")
            cols = ["title", "year", "genres"] + [c for c in ("predicted_rating", "score") if c in movies]
            shown = for_display(movies[["movieId"] + cols])[cols + ["similar"]]
            st.dataframe(shown, hide_index=True, width="stretch", column_config=MOOD_COLUMNS, key=key)
            st.caption(
                f"Genres: {', '.join(settings.mood_genres[emotion])} · ranked by "
                f"{movies['ranked_by'].iloc[0] if len(movies) else '—'} · {ms:.1f} ms"
            )


def analyse_photo(data: bytes, where, key: str, show_image: bool = True) -> None:
    """The photo's faces, their mood and the movies for it. ``key``: this source's own (a photo
    taken and the same one uploaded draw identical charts). ``show_image=False`` for the camera,
    whose own preview already shows the photo (shown twice otherwise, issue 24)."""
    with friendly_errors("Reading the photo"):
        try:
            img = decode_image(data)  # checked (size from the header first), once, upright
            faces = model.analyze(img)
        except EmotionInputError as exc:
            where.error(str(exc))
            return
        if not faces:
            where.warning("No face found. Face the camera, with your face well lit and not too small.")
            return
        if show_image:
            where.image(cv2.cvtColor(draw_faces(img, faces), cv2.COLOR_BGR2RGB), width=420)
        elif len(faces) > 1:
            where.caption(f"{len(faces)} faces in the photo: the biggest one is read.")
        face = faces[0]
        where.markdown(f"### {EMOJI[face.label]} {face.label} ({face.confidence:.0%})")
        show_probabilities(where, face.probabilities, "Probabilities (biggest face)", key=f"{key}_probs")
        show_movies(where, face.label, key=f"{key}_movies")


# Every tab but "About the model" is drawn on every run (a live stream keeps running while another tab
# is open); the model card's charts only while it is open: they would load Plotly (seconds in a fresh
# browser) for a tab that most visits never open.
live, photo, upload, manual, about = st.tabs(
    ["Live webcam", "Take a photo", "Upload a photo", "Choose by hand", "About the model"],
    key="mood_tab",
    on_change="rerun",
)

with live:
    if "frame_processor" not in st.session_state:
        st.session_state.frame_processor = FrameProcessor(model)
    processor: FrameProcessor = st.session_state.frame_processor

    def on_frame(frame: av.VideoFrame) -> av.VideoFrame:
        # NOTE: runs in a WebRTC worker thread: no st.* here; results go through a queue.
        return av.VideoFrame.from_ndarray(processor.process(frame.to_ndarray(format="bgr24")), format="bgr24")

    video_col, info_col = st.columns([3, 2])
    with video_col:
        try:
            ctx = webrtc_streamer(
                key="emotion-live",
                mode=WebRtcMode.SENDRECV,
                video_frame_callback=on_frame,
                media_stream_constraints={"video": True, "audio": False},
                rtc_configuration={"iceServers": settings.rtc_ice_servers},
                async_processing=True,
                translations=LABELS,
            )
        except Exception as exc:  # WebRTC needs a live server session (not a bare script run)
            logging.getLogger("app").warning("live video unavailable: %r", exc)
            st.warning("Live video cannot start in this session. Use the photo, upload or by-hand tabs.")
            ctx = None
        st.caption(
            "Press Start and allow camera access. No camera, or access denied? Use the photo, upload or by-hand tabs."
        )
        style_webrtc_buttons()
    label_box, chart_box, stats_box = info_col.empty(), info_col.empty(), info_col.empty()
    movies_box = st.empty()

with photo:
    shot = st.camera_input("Take a photo", key="mood_camera")
    if shot is not None:
        analyse_photo(shot.getvalue(), photo, "camera", show_image=False)

with upload:
    file = st.file_uploader(
        f"A photo with a face (JPEG, PNG or WebP, up to {PHOTO_MB} MB)",
        type=["jpg", "jpeg", "png", "webp"],
        key="mood_upload",
        max_upload_size=PHOTO_MB,
    )
    if file is not None:
        analyse_photo(file.getvalue(), upload, "upload")

with manual:
    emotion = st.radio(
        "How do you feel?",
        list(EMOTIONS),
        horizontal=True,
        index=None,
        format_func=lambda e: f"{EMOJI[e]} {e}",
        key="mood_manual",
        persist_state="session",
    )
    if emotion:
        show_movies(manual, emotion)

with about:
    if about.open:  # drawn while open only (see the tabs)
        try:
            report = load_report()
        except ReportError as exc:
            st.error(str(exc))
        else:
            info = report.summary
            a, b, c = st.columns(3)
            nets = info["networks"]
            a.metric(
                "FER2013 test accuracy",
                f"{info['accuracy']:.1%}",
                help=f"{info['n_images']:,} test images never seen in training, each averaged with "
                "its mirror image as photos are here"
                + (
                    f"; {info['accuracy_single_pass']:.1%} in one pass"
                    + (" of one network" if nets > 1 else "")
                    + ", as live video runs each frame"
                    if info["accuracy_single_pass"]
                    else ""
                ),
            )
            b.metric(
                "Parameters",
                f"{info['parameters'] / 1e6:.2f} M" if info["parameters"] else "—",
                help=(f"{nets} networks" if nets > 1 else "")
                + (
                    "; weights stored as float16 (half the file), run as float32"
                    if info["storage"] == "float16"
                    else ""
                )
                or None,
            )
            c.metric(
                "Training",
                f"{info['epochs'] or '?'} epochs · {info['training_hours']:.1f} h",
                help=f"{info['runs']} learning-rate cycle(s)"
                + (f" over {nets} networks" if nets > 1 else "")
                + "; hours as measured by the training machine",
            )
            starts = (
                "different random starts and architectures"
                if len(info["architectures"]) > 1
                else "different random starts"
            )
            shipped = {
                "weight_average": "Shipped weights: the average of the last epochs' weights.",
                "ensemble": f"Shipped: {nets} networks trained from {starts}, their "
                "answers averaged (live video runs them in turn, one per frame).",
            }
            st.caption(
                "Humans agree with FER2013's labels about 65 % of the time; the best single networks "
                "reach about 73 %. " + shipped.get(info["shipped"], "")
            )
            if nets > 1:
                st.dataframe(
                    report.networks,
                    hide_index=True,
                    width="stretch",
                    column_config={
                        "test accuracy": st.column_config.NumberColumn(
                            format="percent", help="this network alone, face + mirror"
                        ),
                        "one pass": st.column_config.NumberColumn(
                            format="percent", help="this network alone, one pass (live video)"
                        ),
                        "parameters": st.column_config.NumberColumn(format="compact"),
                        "trained with": st.column_config.TextColumn(
                            help="the Keras backend (and device) it trained on"
                        ),
                    },
                )
            left, right = st.columns(2)
            per_class = report.per_class.melt(
                id_vars=["emotion", "support"], value_vars=["precision", "recall"], var_name="measure"
            )
            left.plotly_chart(
                px.bar(
                    per_class,
                    x="emotion",
                    y="value",
                    color="measure",
                    barmode="group",
                    color_discrete_sequence=SERIES,
                    range_y=[0, 1],
                    title="Per emotion (test)",
                    hover_data=["support"],
                ),
                width="stretch",
            )
            right.plotly_chart(
                px.imshow(
                    report.confusion,
                    text_auto=".0%",
                    color_continuous_scale="Blues",
                    zmin=0,
                    zmax=1,
                    title="Confusion (row = true emotion)",
                ),
                width="stretch",
            )
            if not report.curve.empty:
                st.plotly_chart(
                    px.line(
                        report.curve,
                        x="epoch",
                        y="accuracy",
                        color="split",
                        color_discrete_sequence=SERIES,
                        line_dash="run",
                        title="Training curve (all runs)",
                    ),
                    width="stretch",
                )

# Last: while the camera plays this loop holds the script, so every other tab is drawn first.
with live:
    if ctx is not None and ctx.state.playing:
        shown, drawn, draws = None, None, 0
        while ctx.state.playing:
            reading = processor.latest()
            if reading is not None:
                stats_box.caption(f"{reading.fps:.1f} frames/s processed · faces in view: {reading.faces}")
                if reading.label:
                    label_box.markdown(f"## {EMOJI[reading.label]} {reading.label}")
                    probs = {e: round(p, 3) for e, p in reading.probabilities.items()}
                    if probs != drawn:  # a still face: nothing new to send
                        drawn, draws = probs, draws + 1
                        show_probabilities(chart_box, probs, "Smoothed over recent frames", key=f"live_probs_{draws}")
                    if reading.label != shown:  # refresh the list only when the mood changes
                        shown, draws = reading.label, draws + 1
                        movies_box.empty()
                        show_movies(movies_box, shown, key=f"live_movies_{draws}")
                else:
                    label_box.info("Looking for a face…")
            time.sleep(0.3)
    else:
        label_box.info("Camera is off.")
