"""Home: what the app does, which dataset and model are loaded, and first-run training."""

import streamlit as st

from engine.data.stats import dataset_label
from engine.recommender.evaluation import ranking_metric
from engine.recommender.model_store import ModelError, NoModelYet, current_model_dir, read_params
from engine.settings import get_settings
from pages._common import (
    admin_unlocked,
    friendly_errors,
    job_slot,
    md_escape,
    model_metrics,
    progress_bar,
    running_job_note,
    spark_release,
    spark_session,
    through_navigation,
)

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py

settings = get_settings()

st.title("🎬 Movie Recommender")
st.write(
    "Explore the MovieLens ratings, get personal recommendations from a Spark ALS model, "
    "find similar movies, and let the webcam read your mood to pick a film."
)

PAGES = [  # page, label, icon, what it is for
    (
        "pages/recommendations.py",
        "Recommendations",
        "⭐",
        "Top picks for a MovieLens user; for you from a few ratings (or your IMDb or Letterboxd export); "
        "for a movie night of several people.",
    ),
    ("pages/similar.py", "Similar movies", "🎞️", "Movies like one you love, or like several at once."),
    (
        "pages/emotion.py",
        "Mood from your face",
        "🙂",
        "Your webcam reads your expression in the browser; movies to match it.",
    ),
    (
        "pages/statistics.py",
        "Dataset statistics",
        "📊",
        "How the ratings spread over users, movies, genres, decades and years, for all of them or any slice.",
    ),
    (
        "pages/model.py",
        "Model: tune and evaluate",
        "⚙️",
        "Cross-validated tuning of Spark ALS, baselines, ranking quality; switch the model served.",
    ),
]
for row in (PAGES[:3], PAGES[3:]):
    for col, (page, label, icon, what) in zip(st.columns(3), row):
        with col.container(border=True, height="stretch"):
            st.page_link(page, label=f"**{label}**", icon=icon)
            st.caption(what)
st.write("Try:")
tries = st.columns(3)
tries[0].page_link("pages/recommendations.py", label="User 575's top picks", icon="⭐", query_params={"user": "575"})
tries[1].page_link(
    "pages/similar.py", label="Movies like The Godfather", icon="🎞️", query_params={"movie": "the godfather"}
)
tries[2].page_link(
    "pages/statistics.py",
    label="Film-Noir of the 1940s, in numbers",
    icon="📊",
    query_params={"genres": "Film-Noir", "released": "1940-1949"},
)

st.subheader("Dataset")
st.write(f"**{md_escape(dataset_label(settings.movielens_data))}**")  # the server's paths: in the expander
with st.expander("Where the data and the models are on the server"):
    st.caption("The ratings (`MOVIELENS_DATA`):")
    st.text(settings.movielens_data)
    st.caption("Saved models (`MODEL_DIR`):")
    st.text(settings.model_dir)

try:
    folder = current_model_dir(settings.model_dir)
except NoModelYet:
    folder = None  # a first run: the section below says so
except ModelError as exc:
    folder = None  # e.g. CURRENT names a deleted model, or is not a name at all
    st.warning(f"{exc}")
    st.page_link("pages/model.py", label="Pick a saved model (Model page, Saved models)", icon="⚙️")

if folder is not None:
    with friendly_errors("Reading the model"), st.spinner(f"Reading model {folder.name}…", show_time=True):
        params = read_params(folder)
        metrics = model_metrics(str(folder), (folder / "params.json").stat().st_mtime)
        ds = params.get("dataset", {})
        st.write(
            f"Model **{folder.name}**, trained on **{ds.get('name')}** "
            f"({ds.get('n_ratings', 0):,} ratings): rank {params['rank']}, "
            f"{params['max_iter']} iterations, regParam {params['reg_param']}."
        )
        m = st.columns(4)
        m[0].metric("Test RMSE", f"{metrics['test_rmse']:.4f}")
        m[1].metric(
            "Plain ALS RMSE",
            f"{metrics['plain_als_rmse']:.4f}",
            delta=f"{metrics['test_rmse'] - metrics['plain_als_rmse']:+.4f}",
            delta_color="inverse",
        )
        m[2].metric("Bias-only RMSE", f"{metrics['bias_baseline_rmse']:.4f}")
        picks_ndcg, popular_ndcg = ranking_metric(metrics, "picks"), ranking_metric(metrics, "popularity")
        if picks_ndcg is not None:
            m[3].metric(
                "Top picks NDCG@10", f"{picks_ndcg:.3f}", delta=f"{picks_ndcg - popular_ndcg:+.3f} vs most popular"
            )
        else:
            m[3].metric("NDCG@10 (popularity)", f"{ranking_metric(metrics, 'model'):.3f} ({popular_ndcg:.3f})")
else:
    st.subheader("First run")
    st.write(
        f"No model yet in `{settings.model_dir}`. Training the default bias-corrected ALS model "
        "(here, or `python -m engine train` in a terminal) shows its time left as it goes, "
        "estimated from the pace of the steps already done."
    )
    busy = running_job_note()
    if admin_unlocked("train the model") and st.button("Train the default model", type="primary", disabled=busy):
        from engine.recommender.training import train_and_save  # Spark's and the trainer's imports: only to train

        report = progress_bar()
        with friendly_errors("Training"), job_slot().run("Training the default model", report) as progress:
            path, metrics = train_and_save(spark_session(), spark_release(), settings.model_dir, progress=progress)
            if metrics["current"]:
                st.success(f"Model {path.name} ready: test RMSE {metrics['test_rmse']:.4f}.")
                st.rerun()
            # worse than the bias-only baseline: saved, not served
            st.warning(
                f"Model {path.name} is saved but not served: {metrics['not_current']}. Tune it on the Model page."
            )
