"""Demo: simulate a small MicroBooNE sample, preprocess it on Dask, describe the result.

The whole nudask flow on data nudask makes itself:

1. ``simulate_microboone`` writes OpenSamples-layout WithWire files (full
   MicroBooNE geometry: 2400/2400/3456 wires x 6400 ticks);
2. ``nudask.preprocess`` renders each event's three wire planes (the notebook
   recipe: 6-tick sums, cut at 10, clip at 100), sparsifies them and writes a
   partitioned Parquet dataset, on a local Dask cluster (the dashboard link and
   a progress bar are printed);
3. the dataset is opened again and summarised, and event 0 is drawn.

Run it with ``make demo`` or ``python jobs/demo.py [--out DIR] [--events N]``.
"""

from __future__ import annotations

import argparse
import os

CONFIG = {
    "out": "demo",  # folder for the inputs, the dataset and the plots
    "files": 2,  # simulated input files
    "events": 6,  # events per file
    "sample": "bnb",  # inclusive beam sample (or "nue")
    "geometry": "microboone",
    "events_per_chunk": 3,  # one Dask task per chunk of events
}


def main(cfg: dict) -> None:
    import nudask
    from nudask.describe import format_summary, summarize
    from nudask.display import show_event

    inputs = os.path.join(cfg["out"], "inputs")
    os.makedirs(inputs, exist_ok=True)
    files = [
        nudask.simulate_microboone(
            os.path.join(inputs, f"{cfg['sample']}_WithWire_{k:02d}.h5"),
            n_events=cfg["events"],
            seed=k,
            sample=cfg["sample"],
            geometry=cfg["geometry"],
            subrun=k,
            first_event=1 + k * cfg["events"],
        )
        for k in range(cfg["files"])
    ]
    print(f"simulated {len(files)} files x {cfg['events']} events into {inputs}")

    ds = nudask.preprocess(
        files,
        os.path.join(cfg["out"], "bnb.parquet"),
        reader="microboone",
        reader_options={"geometry": cfg["geometry"]},
        events_per_chunk=cfg["events_per_chunk"],
        overwrite=True,
    )
    print(ds)
    print(ds.metadata[["run", "subrun", "event", "nu_pdg", "is_cc", "nu_energy"]].head(8))
    print(format_summary(summarize(ds, sample=4)))
    print(f"event display: {show_event(ds, 0, os.path.join(cfg['out'], 'event_0.png'))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=CONFIG["out"])
    parser.add_argument("--events", type=int, default=CONFIG["events"])
    parser.add_argument("--geometry", default=CONFIG["geometry"])
    args = parser.parse_args()
    main({**CONFIG, "out": args.out, "events": args.events, "geometry": args.geometry})
