"""Incident detection on a simulated week: time and contacts to detect injected defects, and false
alarms per simulated day, for the store's detector (Poisson CUSUM with an hour-of-day baseline)
beside a fixed-threshold rule (an alarm when a group gets ``--threshold`` contacts within an
hour), on the same contacts in the same run.

The week: 14 days of history, then 7 days scanned. Ordinary defect noise: eight error codes, each
with its own rate, a daily rhythm (quiet at night, busy at lunch and in the evening) and a weekly
one (busier weekends). Injected defects of different sizes and shapes: sudden on a new code,
sudden on a noisy code, ramping, one market only, one app version only, and a small one below 20
an hour. Contacts are written through the store's real write path; the detector scans the minute
after each defect contact and hourly while an incident is open, as ``assistant incidents replay``.

    python benchmarks/bench_incidents.py [--seed N] [--threshold N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from assistant import HelpRequest, HelpResponse, JourneyContext
from assistant.incidents import DetectionConfig, IncidentDetector, group_of
from assistant.incidents.replay import ScanClock
from assistant.records import ConversationRecord
from assistant.request import JourneyEvent
from assistant.response import HandoffPacket, Priority, Reason, ReasonCode, Route
from assistant.store import ConversationStore

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
HISTORY_DAYS, WEEK_DAYS = 14, 7
NOISE = {  # error code -> contacts an hour at the daily mean
    "NET-408": 3.0, "GPS-110": 1.5, "PAY-204": 0.8, "UPL-500": 1.0, "MAP-210": 0.5, "SCN-300": 0.3,
    "CHT-120": 0.2, "LOG-401": 0.6,
}
TARGET_PER_HOUR = 20.0  # the target: defects of this rate detected within 15 minutes
MARKETS, VERSIONS = ("us-ca", "us-tx", "us-ny", "ca-on"), ("5.4.1", "5.4.2", "5.5.0")


@dataclass(frozen=True)
class Defect:
    name: str
    code: str
    start: datetime
    hours: float
    peak_per_hour: float
    shape: str = "sudden"  # or "ramp": linear from 0 to the peak over the duration
    market: str | None = None
    version: str | None = None

    def reaches(self, per_hour: float) -> datetime | None:
        """When its rate first reaches ``per_hour`` (None if it never does)."""
        if self.peak_per_hour < per_hour:
            return None
        if self.shape == "ramp":
            return self.start + timedelta(hours=self.hours * per_hour / self.peak_per_hour)
        return self.start

    def rate(self, t: datetime) -> float:
        into = (t - self.start).total_seconds() / 3600
        if not 0 <= into < self.hours:
            return 0.0
        return self.peak_per_hour * (into / self.hours if self.shape == "ramp" else 1.0)


def week_start() -> datetime:
    return START + timedelta(days=HISTORY_DAYS)


def defects() -> list[Defect]:
    w = week_start()
    return [
        Defect("sudden, new code, 20/h", "ERR-901", w + timedelta(days=0, hours=10, minutes=17), 3, 20),
        Defect("sudden on a noisy code (NET-408 +30/h)", "NET-408", w + timedelta(days=1, hours=19, minutes=5), 2, 30),
        Defect("ramp 0 to 40/h over 2 h", "PAY-777", w + timedelta(days=2, hours=8, minutes=40), 2, 40, shape="ramp"),
        Defect("one market (ca-on), 20/h", "GPS-110", w + timedelta(days=3, hours=13, minutes=30), 2, 20, market="ca-on"),
        Defect("one app version (5.5.0), 25/h", "UPL-500", w + timedelta(days=4, hours=21, minutes=50), 2, 25, version="5.5.0"),
        Defect("small, 8/h for 4 h", "SCN-300", w + timedelta(days=5, hours=3, minutes=10), 4, 8),
    ]


def rhythm(t: datetime) -> float:
    """Relative contact rate: quiet at night, peaks at lunch and in the evening, busier weekends."""
    h = t.hour + t.minute / 60
    daily = 0.25 + 0.9 * math.exp(-((h - 12.5) ** 2) / 4) + 1.3 * math.exp(-((h - 19) ** 2) / 5)
    weekly = 1.3 if t.weekday() >= 5 else 1.0
    return daily * weekly / 0.82  # about 1 on average over a day


def contacts(seed: int) -> list[tuple[datetime, str, str, str, str | None]]:
    """(time, code, market, version, injected defect name or None), in time order."""
    rng = np.random.default_rng(seed)
    out: list[tuple[datetime, str, str, str, str | None]] = []
    injected = defects()
    t, end = START, week_start() + timedelta(days=WEEK_DAYS)
    while t < end:
        scale = rhythm(t)
        for code, rate in NOISE.items():
            for _ in range(rng.poisson(rate * scale / 60)):
                out.append((t + timedelta(seconds=int(rng.integers(60))), code, str(rng.choice(MARKETS)),
                            str(rng.choice(VERSIONS)), None))
        for d in injected:
            for _ in range(rng.poisson(d.rate(t) / 60)):
                out.append((t + timedelta(seconds=int(rng.integers(60))), d.code, d.market or str(rng.choice(MARKETS)),
                            d.version or str(rng.choice(VERSIONS)), d.name))
        t += timedelta(minutes=1)
    return sorted(out, key=lambda c: c[0])


def record(n: int, at: datetime, code: str, market: str, version: str) -> ConversationRecord:
    journey = JourneyContext(stage="at_dropoff", market=market, app_version=version, platform="android",
                             events=[JourneyEvent(type="error", code=code, name="api_call")])
    packet = HandoffPacket(
        category="app_defect", priority=Priority.HIGH, summary="defect", driver_message="the app failed",
        defect_signature={"error_code": code, "endpoint": "api_call", "app_version": version, "platform": "android",
                          "stage": "at_dropoff"},
    )
    response = HelpResponse(route=Route.ESCALATE, reasons=[Reason(code=ReasonCode.DEFECT_CONFIRMED, detail="sim")],
                            answer="handed over", confidence=0.5, conversation_id=f"sim-{n}", handoff=packet)
    return ConversationRecord(conversation_id=f"sim-{n}", created_at=at, cleaned_message="the app failed",
                              request=HelpRequest(message="the app failed", journey=journey, driver_id=f"drv-{n}"),
                              response=response)


def fixed_threshold(stream: list[tuple[datetime, str, str, str, str | None]], threshold: int) -> list[tuple[str, datetime]]:
    """Alarms of the rule 'a group got ``threshold`` contacts within the last hour' (re-armed
    after an hour below it), during the scanned week."""
    recent: dict[str, deque[datetime]] = defaultdict(deque)
    armed: dict[str, bool] = defaultdict(lambda: True)
    alarms = []
    for at, code, *_ in stream:
        group = group_of({"error_code": code}) or code
        window = recent[group]
        window.append(at)
        while window and window[0] <= at - timedelta(hours=1):
            window.popleft()
        if len(window) >= threshold and armed[group]:
            if at >= week_start():
                alarms.append((group, at))
            armed[group] = False
        elif len(window) < threshold // 2:
            armed[group] = True
    return alarms


def score(alarms: list[tuple[str, datetime]], stream: list[tuple[datetime, str, str, str, str | None]]) -> dict[str, object]:
    """Per injected defect: minutes and contacts from its first contact to the first alarm on its
    group while it lasts (or within an hour after); every other alarm is a false alarm."""
    rows, matched = [], set()
    for d in defects():
        group = group_of({"error_code": d.code})
        mine = [c for c in stream if c[4] == d.name]
        first = mine[0][0] if mine else d.start
        hit = next(((g, at) for g, at in alarms if g == group and first - timedelta(minutes=5) <= at <= d.start
                    + timedelta(hours=d.hours + 1)), None)
        if hit is not None:
            matched.add(hit)
        reached = d.reaches(TARGET_PER_HOUR)
        rows.append({
            "defect": d.name, "peak_per_hour": d.peak_per_hour,
            "minutes_to_detect": round((hit[1] - first).total_seconds() / 60, 1) if hit else None,
            # the target (every defect of 20 or more contacts an hour within 15 minutes),
            # counted from its first contact once its rate is 20 an hour (a ramp's is later)
            "minutes_after_target_rate": round((hit[1] - max(first, reached)).total_seconds() / 60, 1)
            if hit and reached else None,
            "contacts_to_detect": sum(1 for c in mine if c[0] <= hit[1]) if hit else None,
        })
    false_alarms = [a for a in alarms if a not in matched]
    return {"defects": rows, "false_alarms": len(false_alarms), "false_alarms_per_day": round(len(false_alarms) / WEEK_DAYS, 2),
            "false_alarm_groups": sorted({g for g, _ in false_alarms}),
            "false_alarm_times": [f"{g} {at:%a %H:%M}" for g, at in false_alarms]}


def run_detector(
    stream: list[tuple[datetime, str, str, str, str | None]], folder: Path, config: DetectionConfig
) -> tuple[list[tuple[str, datetime]], float]:
    store = ConversationStore.from_url(f"sqlite:///{folder / 'sim.db'}")
    store.upgrade()
    detector = IncidentDetector(store, config)
    clock = ScanClock(detector)  # when the workers scan: as `assistant incidents replay` does
    started = time.perf_counter()
    for n, (at, code, market, version, _) in enumerate(stream):
        scanned = at >= week_start()
        if scanned:
            clock.scan_until(at)
        assert store.write(record(n, at, code, market, version))
        if scanned:
            clock.counted(at)
    scans = clock.scans
    seconds = time.perf_counter() - started
    opened = [(i.group, i.opened_at) for i in sorted(detector.incidents(limit=10_000), key=lambda i: i.opened_at)]
    print(f"  {len(stream)} contacts written, {scans} scans in {seconds:.0f} s")
    return opened, seconds


def chart(stream: list[tuple[datetime, str, str, str, str | None]], results: dict[str, list[tuple[str, datetime]]], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    injected = defects()
    fig = make_subplots(rows=len(injected), cols=1, subplot_titles=[d.name for d in injected], vertical_spacing=0.04)
    for row, d in enumerate(injected, start=1):
        group = group_of({"error_code": d.code})
        lo, hi = d.start - timedelta(hours=6), d.start + timedelta(hours=d.hours + 4)
        buckets: dict[datetime, int] = defaultdict(int)
        for at, code, *_ in stream:
            if code == d.code and lo <= at < hi:
                buckets[at.replace(minute=(at.minute // 10) * 10, second=0, microsecond=0)] += 1
        xs = sorted(buckets)
        fig.add_trace(go.Bar(x=xs, y=[buckets[x] * 6 for x in xs], name="contacts/h (10-min bins)",
                             marker_color="#8a8f98", showlegend=row == 1), row=row, col=1)
        for label, color in (("CUSUM", "#1b7a3d"), ("fixed threshold", "#c05d00")):
            hits = [at for g, at in results[label] if g == group and lo <= at < hi]
            fig.add_trace(go.Scatter(x=hits, y=[0] * len(hits), mode="markers", marker={"size": 12, "color": color,
                                     "symbol": "triangle-up"}, name=f"{label} alarm", showlegend=row == 1), row=row, col=1)
    fig.update_layout(height=260 * len(injected), title="Injected defects: contacts and alarms")
    fig.write_html(path, include_plotlyjs=True, full_html=True)


def run_seed(seed: int, threshold: int, config: DetectionConfig, out: Path | None) -> dict[str, object]:
    stream = contacts(seed)
    print(f"seed {seed}: {len(stream)} defect contacts over {HISTORY_DAYS} + {WEEK_DAYS} days")
    with tempfile.TemporaryDirectory() as folder:
        cusum, seconds = run_detector(stream, Path(folder), config)
    results = {"CUSUM": cusum, "fixed threshold": fixed_threshold(stream, threshold)}
    report: dict[str, object] = {name: score(alarms, stream) for name, alarms in results.items()}
    report["meta"] = {"seed": seed, "contacts": len(stream), "detector_seconds": round(seconds, 1)}
    if out is not None:
        chart(stream, results, out / f"chart-seed{seed}.html")
    return report


def summary(reports: list[dict[str, object]], threshold: int) -> str:
    """Per injected defect: mean and worst minutes (contacts) to detect over the seeds, and misses;
    false alarms per simulated day."""
    lines = [f"| injected defect | CUSUM: mean / worst min (contacts) | fixed {threshold}/h: mean / worst min (contacts) |",
             "|---|---:|---:|"]
    names = [d.name for d in defects()]

    def cell(name: str, detector: str) -> str:
        rows = [next(r for r in rep[detector]["defects"] if r["defect"] == name) for rep in reports]  # type: ignore[index]
        hit = [r for r in rows if r["minutes_to_detect"] is not None]
        if not hit:
            return "missed"
        minutes = [float(r["minutes_to_detect"]) for r in hit]
        worst = max(hit, key=lambda r: float(r["minutes_to_detect"]))
        missed = len(rows) - len(hit)
        return (f"{sum(minutes) / len(minutes):.1f} / {worst['minutes_to_detect']} ({worst['contacts_to_detect']})"
                + (f", missed {missed}" if missed else ""))

    for name in names:
        lines.append(f"| {name} | {cell(name, 'CUSUM')} | {cell(name, 'fixed threshold')} |")
    for detector in ("CUSUM", "fixed threshold"):
        targets = [(r["minutes_after_target_rate"], r["defect"]) for rep in reports for r in rep[detector]["defects"]  # type: ignore[index]
                   if r["peak_per_hour"] >= TARGET_PER_HOUR]
        late = [(m, name) for m, name in targets if m is None or m > 15]
        worst = max(targets, key=lambda t: float("inf") if t[0] is None else t[0])
        lines.append(f"\n{detector}: {len(targets) - len(late)} of {len(targets)} detections of defects of "
                     f"{TARGET_PER_HOUR:.0f}+/h within 15 min of their first contact at that rate (worst "
                     f"{'missed' if worst[0] is None else f'{worst[0]} min'}: {worst[1]})")
    for detector in ("CUSUM", "fixed threshold"):
        per_day = [float(rep[detector]["false_alarms_per_day"]) for rep in reports]  # type: ignore[index]
        lines.append(f"\n{detector}: false alarms per simulated day, mean {sum(per_day) / len(per_day):.2f}, "
                     f"worst {max(per_day):.2f} (seeds {', '.join(str(rep['meta']['seed']) for rep in reports)})")  # type: ignore[index]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="20261129", help="Comma-separated seeds (one simulated week each).")
    parser.add_argument("--threshold", type=int, default=10, help="Fixed-threshold rule: contacts within an hour.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "incidents")
    parser.add_argument("--config", default="{}", help="DetectionConfig fields as JSON (default: the library's).")
    args = parser.parse_args()
    config = DetectionConfig.model_validate(json.loads(args.config))
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    reports = [run_seed(seed, args.threshold, config, args.out) for seed in seeds]
    text = summary(reports, args.threshold)
    body = {"config": config.model_dump(), "threshold_per_hour": args.threshold, "seeds": reports}
    (args.out / "report.json").write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
    (args.out / "summary.md").write_text(text + "\n", encoding="utf-8")
    print("\n" + text)
    print(f"\nreport: {args.out / 'report.json'}, charts: {args.out}/chart-seed*.html")


if __name__ == "__main__":
    main()
