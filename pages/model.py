"""Model: tune with a grid and k folds, read the CV table and heatmap, evaluate, pick current."""

import pandas as pd
import plotly.express as px
import streamlit as st

from engine.jobs import format_seconds
from engine.recommender.model_store import current_name, delete_model, read_json, saved_models, set_current
from engine.recommender.training import ALSConfig, train_and_save
from engine.recommender.tuning import grid_units, tune
from engine.settings import get_settings
from pages._charts import RMSE_FORMAT, SCALE, SERIES
from pages._common import (
    admin_unlocked,
    friendly_errors,
    job_slot,
    model_dir,
    progress_bar,
    running_job_note,
    spark_release,
    spark_session,
    through_navigation,
)

through_navigation()  # first: a deep link into a fresh server runs through streamlit_app.py

settings = get_settings()

st.title("⚙️ Model")

tab_eval, tab_tune, tab_models = st.tabs(["Evaluation", "Tune", "Saved models"])

with tab_eval:
    folder = model_dir()
    if folder is not None:
        with friendly_errors("Reading metrics"):
            metrics = read_json(folder, "metrics.json")
            st.write(
                f"Current model: **{folder.name}** (split seed {metrics['split_seed']}, "
                f"{metrics['n_train']:,} train / {metrics['n_test']:,} test ratings)"
            )
            rows = [("Bias-corrected ALS (this model)", metrics["test_rmse"])]
            if "explicit_rmse" in metrics and metrics["explicit_rmse"] != metrics["test_rmse"]:
                # models from 2026-12-03 on: the stars blend ALS with the movie neighbours and top picks
                rows = [
                    ("Stars shown: ALS + neighbours + top picks", metrics["test_rmse"]),
                    ("Bias-corrected ALS alone", metrics["explicit_rmse"]),
                ]
            rows += [
                ("Plain Spark ALS", metrics["plain_als_rmse"]),
                ("Bias-only baseline", metrics["bias_baseline_rmse"]),
            ]
            rmse = pd.DataFrame(rows, columns=["model", "test RMSE"])
            # Bars from 0 (a cut axis made a few hundredths look like a factor of three); the small
            # differences are written out against the baseline instead.
            base = metrics["bias_baseline_rmse"]
            rmse["label"] = [
                f"{v:{RMSE_FORMAT}}" + (f" ({v - base:+{RMSE_FORMAT}} vs bias-only)" if i < len(rows) - 1 else "")
                for i, v in enumerate(rmse["test RMSE"])
            ]
            fig = px.bar(
                rmse,
                x="test RMSE",
                y="model",
                orientation="h",
                text="label",
                color="model",
                color_discrete_sequence=SERIES,
                title="Test RMSE (lower is better)",
            )
            fig.update_traces(textposition="outside", hovertemplate=f"%{{y}}: %{{x:{RMSE_FORMAT}}}<extra></extra>")
            fig.update_xaxes(range=[0, rmse["test RMSE"].max() * 1.45], tickformat=".1f")  # room for the labels
            fig.update_layout(showlegend=False)
            st.plotly_chart(fig, width="stretch")
            ranking = metrics.get("ranking", {})
            rows = []
            for key, label in (
                ("picks", "Top picks (implicit ALS + EASE)"),
                ("picks_filtered", f"Top picks (≥{ranking.get('min_ratings')} ratings)"),
                ("model", f"Predicted rating (≥{ranking.get('min_ratings')} ratings)"),
                ("model_unfiltered", "Predicted rating (no filter)"),
                ("popularity", "Most popular"),
            ):
                if key in ranking:
                    r = ranking[key]
                    rows.append(
                        {
                            "ranker": label,
                            "precision@10": r["precision_at_k"],
                            "recall@10": r["recall_at_k"],
                            "NDCG@10": r["ndcg_at_k"],
                            "MAP@10": r["map_at_k"],
                        }
                    )
            if rows:
                st.subheader("Top-10 ranking on the test set")
                st.caption(
                    "Relevant = a test movie the user rated 4 or more; movies rated in training "
                    "excluded. Top picks order lists by what a user is likely to watch and like; "
                    "the predicted-rating order fills up with little-known films."
                )
                scores = {
                    m: st.column_config.NumberColumn(m, format="%.3f")
                    for m in ("precision@10", "recall@10", "NDCG@10", "MAP@10")
                }
                st.dataframe(
                    pd.DataFrame(rows),
                    hide_index=True,
                    width="stretch",
                    column_config={"ranker": st.column_config.TextColumn("Ranking"), **scores},
                )
            cv = read_json(folder, "cv.json")
            if cv:
                st.session_state.setdefault("cv_result", cv)

with tab_tune:
    st.write(
        "Cross-validated grid search (k-fold, RMSE; every fit a Spark job) on the seeded training split. "
        "Nothing is saved until you choose to train the best model."
    )
    c = st.columns(4)
    ranks = c[0].multiselect("rank", [4, 8, 16, 32, 64], [8, 16], key="grid_rank", persist_state="session")
    iters = c[1].multiselect("maxIter", [5, 10, 15, 20], [10], key="grid_iter", persist_state="session")
    regs = c[2].multiselect(
        "regParam", [0.01, 0.05, 0.1, 0.2, 0.3], [0.05, 0.1, 0.2], key="grid_reg", persist_state="session"
    )
    folds = c[3].number_input("folds", 2, 10, 3, key="grid_folds", persist_state="session")
    fits = len(ranks) * len(iters) * len(regs) * folds  # no refit on all of train (tuning.py)
    last = st.session_state.get("cv_result") or {}
    if last.get("seconds") and last.get("grid") and last.get("folds"):  # the pace of the last grid run here
        per_unit = last["seconds"] / grid_units(last["grid"], last["folds"])
        grid_now = {"rank": ranks, "maxIter": iters, "regParam": regs}
        st.caption(
            f"{fits} fits: about {format_seconds(per_unit * grid_units(grid_now, int(folds)))} at the "
            f"pace of the last grid search ({last['fits']} fits in {last['seconds']:g} s); the bar "
            "updates the time left as the fits finish."
        )
    else:
        st.caption(f"{fits} fits. The bar shows the time left once the first fits have set the pace.")
    may_tune = admin_unlocked("tune and train models")
    busy = running_job_note()
    if may_tune and st.button("Run the grid search", type="primary", disabled=fits <= 1 or busy):
        report = progress_bar("Splitting the ratings; the time left shows once the first fits are done…")
        with friendly_errors("Tuning"), job_slot().run("Tuning", report) as progress:
            result = tune(
                spark_session(),
                spark_release(),
                {"rank": ranks, "maxIter": iters, "regParam": regs},
                int(folds),
                progress=progress,
            )
            st.session_state.cv_result = result
            report(1.0, f"Done: {result['fits']} fits in {result['seconds']} s")
    result = st.session_state.get("cv_result")
    if result:
        table = pd.DataFrame(result["table"])
        best = result["best"]
        st.subheader(
            f"{result['folds']}-fold CV: best RMSE {result['best_rmse']:.4f} at rank {best['rank']}, "
            f"maxIter {best['maxIter']}, regParam {best['regParam']:g}"
        )
        st.dataframe(table, hide_index=True, width="stretch")
        it = st.selectbox("Heatmap for maxIter", sorted(table["maxIter"].unique()), key="heat_iter")
        pivot = table[table["maxIter"] == it].pivot_table(index="rank", columns="regParam", values="rmse")
        heat = px.imshow(
            pivot,
            text_auto=RMSE_FORMAT,
            color_continuous_scale=SCALE[::-1],
            labels={"color": "RMSE"},
            title="CV RMSE over rank x regParam",
        )
        heat.update_xaxes(type="category").update_yaxes(type="category")  # ticks at the grid's values only
        st.plotly_chart(heat, width="stretch")
        if may_tune and st.button("Train the best model and make it current", disabled=busy):
            report = progress_bar()
            with friendly_errors("Training"), job_slot().run("Training", report) as progress:
                best = result["best"]
                cfg = ALSConfig(rank=best["rank"], max_iter=best["maxIter"], reg_param=best["regParam"])
                path, m = train_and_save(
                    spark_session(),
                    spark_release(),
                    settings.model_dir,
                    cfg,
                    cv=result,
                    progress=progress,
                )
                if m["current"]:
                    st.success(f"Saved {path.name}: test RMSE {m['test_rmse']:.4f}. It is now current.")
                else:
                    st.warning(
                        f"Saved {path.name} but did not make it current: {m['not_current']}. "
                        "Make it current below if you want it served anyway."
                    )


@st.dialog("Delete a saved model")
def confirm_delete(name: str) -> None:
    st.write(f"Delete **{name}** for good? Its folder is removed; this cannot be undone.")
    if st.button("Delete", type="primary", key="delete_model"):
        with friendly_errors("Deleting the model"):
            freed = delete_model(settings.model_dir, name)
            if current := current_name(settings.model_dir):  # the picker shows it (none: CURRENT is broken)
                st.session_state.pick_model = current
            else:
                st.session_state.pop("pick_model", None)
            st.session_state.model_note = f"Deleted {name} ({freed / 2**20:.1f} MiB freed)."
            st.rerun()


with tab_models:
    with friendly_errors("Reading the saved models"):
        rows = saved_models(settings.model_dir)
        if not rows:
            st.info("No saved models yet.")
        else:
            st.caption("Newest first. The current model is the one every page serves.")
            with st.expander("Where they are on the server"):
                st.text(settings.model_dir)
            table = pd.DataFrame(rows)[
                [
                    "current",
                    "model",
                    "trained",
                    "dataset",
                    "rank",
                    "max_iter",
                    "reg_param",
                    "test_rmse",
                    "top_picks_ndcg_at_10",
                    "tuned",
                    "size_mb",
                ]
            ]
            # One column for the ALS settings, fixed widths (790 px): every column in view at 1280 px with the
            # sidebar open (eleven auto-sized columns hid Size at 1400 px).
            table["settings"] = [
                f"rank {r.rank} · {r.max_iter} it. · λ {r.reg_param}" + (" · tuned" if r.tuned else "")
                for r in table.itertuples()
            ]
            st.dataframe(
                table,
                hide_index=True,
                width="stretch",
                column_config={
                    "current": st.column_config.CheckboxColumn("Current", width=55),
                    "model": st.column_config.TextColumn("Model", width=170),
                    "trained": st.column_config.TextColumn("Trained (UTC)", width=115),
                    "dataset": st.column_config.TextColumn("Dataset", width=100),
                    "settings": st.column_config.TextColumn(
                        "Settings",
                        width=145,
                        help="rank, maxIter (it.), regParam (λ); tuned: has a cross-validation table",
                    ),
                    "test_rmse": st.column_config.NumberColumn("Test RMSE", format="%.4f", width=75),
                    "top_picks_ndcg_at_10": st.column_config.NumberColumn(
                        "NDCG@10",
                        format="%.3f",
                        width=65,
                        help="Top picks' NDCG@10. Empty: saved before top picks existed",
                    ),
                    "size_mb": st.column_config.NumberColumn("Size", format="%.1f MiB", width=65),
                },
                column_order=[
                    "current",
                    "model",
                    "trained",
                    "dataset",
                    "settings",
                    "test_rmse",
                    "top_picks_ndcg_at_10",
                    "size_mb",
                ],
            )
            current = next((r["model"] for r in rows if r["current"]), None)
            names = [r["model"] for r in rows]
            if not admin_unlocked("switch or delete models"):
                st.stop()
            pick, use, drop = st.columns([3, 1, 1], vertical_alignment="bottom")
            choice = pick.selectbox("Model", names, key="pick_model")
            if use.button("Make current", key="use_model", disabled=choice == current, width="stretch"):
                with friendly_errors("Switching model"):
                    set_current(settings.model_dir, choice)
                    st.session_state.model_note = f"{choice} is now the current model."
                    st.rerun()
            if drop.button(
                "Delete…",
                key="ask_delete_model",
                disabled=choice == current,
                width="stretch",
                help="The current model cannot be deleted: make another one current first."
                if choice == current
                else "Deletes the model's folder, after you confirm.",
            ):
                confirm_delete(choice)
            if note := st.session_state.pop("model_note", None):
                st.success(note)
