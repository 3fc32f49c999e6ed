#!/usr/bin/env python3
"""Scores `lstm forecast` with default settings on classic public series, last H points held out.

For every series: writes the history without its last H points to a CSV file, runs `lstm forecast train` (defaults:
only --target) and `lstm forecast predict`, and compares the median forecast and the 80 % interval (q0.1–q0.9) with
the held-out points. Beside it: naive, seasonal naive and statsmodels' ETS chosen by AICc over error (add, mul),
trend (none, add, damped add) and season (none, add, mul), as R's forecast::ets chooses. Prints MASE and sMAPE per
series, their geometric / arithmetic means, the interval coverage and the wall time of train + predict.

The series ship with statsmodels and pmdarima (no network):
    python3 -m venv ~/torchenv && ~/torchenv/bin/pip install statsmodels pmdarima
    swift build -c release
    ~/torchenv/bin/python Scripts/forecast_benchmark.py [--lstm .build/release/lstm] [--series air,nile,...]
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def load_series():
    """name → (values, frequency, season, horizon, time stamps as the CSV writes them)."""
    import pmdarima.datasets as pm
    import statsmodels.api as sm

    def monthly(start_year, start_month, n):
        return [f"{start_year + (start_month - 1 + i) // 12}-{(start_month - 1 + i) % 12 + 1:02d}" for i in range(n)]

    def quarterly(start_year, start_quarter, n):
        return [f"{start_year + (start_quarter - 1 + i) // 4}Q{(start_quarter - 1 + i) % 4 + 1}" for i in range(n)]

    def yearly(start, n):
        return [str(start + i) for i in range(n)]

    out = {}
    air = pm.load_airpassengers().astype(float)
    out["airpassengers"] = (air, 12, 18, monthly(1949, 1, len(air)))
    wine = pm.load_wineind().astype(float)
    out["wineind"] = (wine, 12, 18, monthly(1980, 1, len(wine)))
    wool = pm.load_woolyrnq().astype(float)
    out["woolyrnq"] = (wool, 4, 8, quarterly(1965, 1, len(wool)))
    austres = pm.load_austres().astype(float)
    out["austres"] = (austres, 4, 8, quarterly(1971, 2, len(austres)))
    lynx = pm.load_lynx().astype(float)
    out["lynx"] = (lynx, 1, 6, yearly(1821, len(lynx)))
    nile = sm.datasets.nile.load_pandas().data["volume"].to_numpy(float)
    out["nile"] = (nile, 1, 6, yearly(1871, len(nile)))
    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(float)
    out["sunspots"] = (sun, 1, 6, yearly(1700, len(sun)))
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    out["co2"] = (co2.to_numpy(float), 12, 18, monthly(co2.index[0].year, co2.index[0].month, len(co2)))
    return out


def mase_scale(history, m):
    lag = m if len(history) > m else 1
    return np.mean(np.abs(history[lag:] - history[:-lag]))


def scores(actual, forecast, history, m):
    mae = np.mean(np.abs(actual - forecast))
    smape = 100 * np.mean(2 * np.abs(actual - forecast) / (np.abs(actual) + np.abs(forecast)))
    return mae / mase_scale(history, m), smape


def seasonal_naive(history, H, m):
    if m <= 1:
        return np.repeat(history[-1], H)
    return np.array([history[len(history) - m + h % m] for h in range(H)])


def ets_aicc(history, H, m):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    best = None
    positive = np.all(history > 0)
    for error in ["add", "mul"] if positive else ["add"]:
        for trend, damped in [(None, False), ("add", False), ("add", True)]:
            for seasonal in ([None, "add", "mul"] if positive else [None, "add"]) if m > 1 else [None]:
                try:
                    fit = ETSModel(history, error=error, trend=trend, damped_trend=damped, seasonal=seasonal,
                                   seasonal_periods=m if seasonal else None).fit(disp=False)
                except Exception:
                    continue
                if not np.isfinite(fit.aicc):
                    continue
                if best is None or fit.aicc < best.aicc:
                    best = fit
    return np.asarray(best.forecast(H)), best


def run_lstm(lstm, name, values, stamps, H, folder, extra):
    train_csv = os.path.join(folder, f"{name}.csv")
    with open(train_csv, "w") as f:
        f.write("time,value\n")
        for t, v in zip(stamps[:-H], values[:-H]):
            f.write(f"{t},{v:.10g}\n")
    checkpoint = os.path.join(folder, f"{name}.safetensors")
    out_csv = os.path.join(folder, f"{name}.forecast.csv")
    start = time.time()
    train = subprocess.run([lstm, "forecast", "train", train_csv, "--target", "value", "--checkpoint", checkpoint,
                            "--force"] + extra, capture_output=True, text=True)
    if train.returncode != 0:
        sys.exit(f"{name}: lstm forecast train failed: {train.stderr}")
    best = checkpoint.replace(".safetensors", ".best.safetensors")
    predict = subprocess.run([lstm, "forecast", "predict", best, train_csv, "--output", out_csv,
                              "--plot", os.path.join(folder, f"{name}.svg")], capture_output=True, text=True)
    if predict.returncode != 0:
        sys.exit(f"{name}: lstm forecast predict failed: {predict.stderr}")
    seconds = time.time() - start
    rows = [line.split(",") for line in open(out_csv).read().strip().split("\n")]
    header = rows[0]
    table = np.array([[float(x) for x in r] for r in [r[1:] for r in rows[1:]]])
    columns = header[1:]
    return (table[:, columns.index("forecast")], table[:, columns.index("q0.1")], table[:, columns.index("q0.9")],
            seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lstm", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "lstm"))
    parser.add_argument("--series", default="")
    parser.add_argument("--keep", help="folder to keep the CSV files, forecasts and plots in")
    parser.add_argument("--drop-last", type=int, default=0,
                        help="score an earlier window: drop this many points from the end of every series first")
    parser.add_argument("--train-args", default="", help="extra lstm forecast train flags, e.g. '--seed 2' (default: none)")
    args = parser.parse_args()
    everything = load_series()
    names = args.series.split(",") if args.series else list(everything)
    folder = args.keep or tempfile.mkdtemp(prefix="forecast-bench-")
    os.makedirs(folder, exist_ok=True)
    print(f"{'series':14} {'n':>4} {'H':>3} {'m':>3} | {'MASE lstm':>9} {'naive':>7} {'snaive':>7} {'ETS':>7} |"
          f" {'sMAPE lstm':>10} {'naive':>7} {'snaive':>7} {'ETS':>7} | {'cover80':>7} {'seconds':>7}  ETS model")
    results = []
    for name in names:
        values, m, H, stamps = everything[name]
        values = np.asarray(values, float)
        if args.drop_last:
            values, stamps = values[:-args.drop_last], stamps[:-args.drop_last]
        history, actual = values[:-H], values[-H:]
        median, low, high, seconds = run_lstm(args.lstm, name, values, stamps, H, folder, args.train_args.split())
        ets, fit = ets_aicc(history, H, m)
        methods = {"lstm": median, "naive": np.repeat(history[-1], H), "snaive": seasonal_naive(history, H, m), "ETS": ets}
        s = {k: scores(actual, v, history, m) for k, v in methods.items()}
        cover = float(np.mean((actual >= low) & (actual <= high)))
        results.append((name, s, cover, seconds))
        spec = f"ETS({fit.error[0].upper()},{(fit.trend or 'n')[0].upper()}{'d' if fit.damped_trend else ''},{(fit.seasonal or 'n')[0].upper()})"
        print(f"{name:14} {len(values):>4} {H:>3} {m:>3} | {s['lstm'][0]:>9.3f} {s['naive'][0]:>7.3f} {s['snaive'][0]:>7.3f}"
              f" {s['ETS'][0]:>7.3f} | {s['lstm'][1]:>10.2f} {s['naive'][1]:>7.2f} {s['snaive'][1]:>7.2f} {s['ETS'][1]:>7.2f} |"
              f" {cover:>7.2f} {seconds:>7.2f}  {spec}", flush=True)
    geo = {k: math.exp(np.mean([math.log(r[1][k][0]) for r in results])) for k in ["lstm", "naive", "snaive", "ETS"]}
    mean_smape = {k: np.mean([r[1][k][1] for r in results]) for k in ["lstm", "naive", "snaive", "ETS"]}
    print(f"{'mean':14} {'':>4} {'':>3} {'':>3} | {geo['lstm']:>9.3f} {geo['naive']:>7.3f} {geo['snaive']:>7.3f} {geo['ETS']:>7.3f} |"
          f" {mean_smape['lstm']:>10.2f} {mean_smape['naive']:>7.2f} {mean_smape['snaive']:>7.2f} {mean_smape['ETS']:>7.2f} |"
          f" {np.mean([r[2] for r in results]):>7.2f} {np.mean([r[3] for r in results]):>7.2f}")
    print("(MASE: geometric mean; sMAPE and coverage: arithmetic mean; cover80: share of held-out points inside"
          " the q0.1–q0.9 interval)")
    beaten = [r[0] for r in results if not (r[1]["lstm"][0] < r[1]["naive"][0] and r[1]["lstm"][0] < r[1]["snaive"][0])]
    print("below naive and seasonal naive MASE on every series:", "yes" if not beaten else f"no ({', '.join(beaten)})")
    print(f"geometric-mean MASE against ETS: {geo['lstm']:.3f} vs {geo['ETS']:.3f}")
    print(f"files: {folder}")


if __name__ == "__main__":
    main()
